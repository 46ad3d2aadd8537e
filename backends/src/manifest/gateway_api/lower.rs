//! A service's policy as Gateway API route rules — an `HTTPRoute` (or a `TCPRoute` for a TCP service) whose
//! decisions equal the policy's — or every rule that has no exact form, with the reason.
//!
//! What an HTTPRoute can say (Gateway API v1.5/v1.6, `apis/v1/httproute_types.go`): per rule, `matches` are
//! ORed and the fields of one match ANDed; a match has one `path` (`Exact`, `PathPrefix` — segment-wise —, or
//! the implementation-specific `RegularExpression`), `headers` (`Exact`, implementation-specific
//! `RegularExpression`), `queryParams` and `method`. Nothing negates, nothing reads a cookie or the caller.
//! Each condition goes through [`crate::native::cond`] (the same OR-of-AND expansion, `not` pushed onto the
//! matchers) and then each matcher is written as a match field, or refused:
//!
//! * `header h = "v"` → `Exact`; a literal `~ "L"` → `RegularExpression` `.*L.*` and `present` → `.*`, which
//!   Envoy Gateway and Istio both run as an RE2 full match (Envoy Gateway v1.9 `internal/xds/translator/route.go`
//!   `buildXdsStringMatcher`: a `safe_regex` `StringMatcher`); RE2's `.` matches every byte Envoy lets into a
//!   header, so `.*L.*` holds exactly when L occurs, as the evaluator's substring search does.
//! * `path "/p"` is a plain string prefix; `PathPrefix` is not (`/abc` does not match `/abcd`, and Envoy Gateway
//!   writes `PathPrefix: /abc/` as `path_separated_prefix: /abc`, which matches `/abc`). So only `path "/"` is a
//!   `PathPrefix`; any other prefix is the `RegularExpression` `/p.*` (Envoy: RE2 full match of the path without
//!   its query), which Envoy Gateway ranks (below) but the spec does not: refused for `--implementation istio`.
//! * `method M` → `method` when M is one of the nine the spec's enum lists.
//!
//! **Precedence.** An implementation does not try the rules in the order written: the spec ranks matches by
//! exact path, longest prefix, method, most headers, most query params, and only then by rule order; Envoy
//! Gateway v1.9 sorts by its own key ([`Ranking::EnvoyGateway`]). The emitted list decides like the policy when
//! every pair of matches that the ranking reorders either cannot both hold for one request or leads to the same
//! action; otherwise the later rule is refused, naming the earlier one.

use canary_eval::config::{Action, Cond, Config, Protocol, Rule};
use canary_eval::BUCKETS;

use crate::manifest::envoy_routes::re2_escape;
use crate::native::{self, Atom, HeaderTest, NativeAction, Refusal, Target};
use canary_compiler::RuleSpans;
use canary_dsl::ast::Span;

/// Limits of Gateway API v1.5 (`apis/v1/httproute_types.go` kubebuilder markers): rules per route, matches per
/// rule, matches per route (CEL), headers per match, backendRefs per rule.
pub const MAX_RULES: usize = 16;
pub const MAX_MATCHES_PER_RULE: usize = 64;
pub const MAX_MATCHES_PER_ROUTE: usize = 128;
pub const MAX_HEADERS_PER_MATCH: usize = 16;
pub const MAX_BACKEND_REFS: usize = 16;

/// The methods `HTTPMethod`'s enum admits.
pub const METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

/// Whose ordering of the matches decides: the implementation the routes are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    /// The spec's (`HTTPRouteRule` doc comment): exact path, longest prefix, method, headers, query params.
    Spec,
    /// Envoy Gateway v1.9 (`internal/gatewayapi/sort.go`, `XdsIRRoutes.Less`, sorted with `sort.Stable` in
    /// descending order): path type (Exact > RegularExpression > PathPrefix), then the path's length ("/" counts
    /// 0), then the number of header matches — `method` among them, for `processHTTPRouteRule` writes it as a
    /// `:method` header match —, then the number of exact header matches, then cookies and query params.
    EnvoyGateway,
}

/// One match of an HTTPRoute rule: fields ANDed.
#[derive(Debug, Clone, PartialEq)]
pub struct GwMatch {
    pub path: Option<PathMatch>,
    pub method: Option<String>,
    /// In the order written; one entry per header name.
    pub headers: Vec<(String, ValueMatch)>,
    /// The matchers it came from, for the precedence check.
    atoms: Vec<Atom>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PathMatch {
    /// Only `/` (every path).
    Prefix(String),
    /// RE2 full match of the path.
    Regex(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ValueMatch {
    Exact(String),
    Regex(String),
}

/// One HTTPRoute rule: any of `matches` (none: every request) selects `action`.
#[derive(Debug, Clone, PartialEq)]
pub struct GwRule {
    /// The policy line, `None` for the default.
    pub line: Option<u32>,
    /// The policy rule's span (`None` for the default): the key of its route settings.
    pub span: Option<Span>,
    pub matches: Vec<GwMatch>,
    /// `Split` weights name `None` for the default subset; resolved to `default` by the writer.
    pub action: NativeAction,
}

/// A service's route.
#[derive(Debug, Clone, PartialEq)]
pub struct GwService {
    pub name: String,
    pub protocol: Protocol,
    /// In emission order; the last one has no matches when the policy has a default (or a catch-all rule).
    pub rules: Vec<GwRule>,
    /// The subset undecided requests (and a split's remainder) get.
    pub default: String,
}

/// Lowers `service` for `ranking`, or returns every rule without an exact form. `fallback` is the subset
/// undecided requests get when the policy has no default (`--subsets`' first); without either, refused.
pub fn lower_service(
    config: &Config,
    spans: &RuleSpans,
    service: &str,
    protocol: Protocol,
    ranking: Ranking,
    fallback: Option<&str>,
) -> Result<GwService, Vec<Refusal>> {
    let (rules, policy_default) = crate::native::service_rules(config, spans, service, protocol);
    let mut refusals = Vec::new();
    let default = match policy_default.or_else(|| fallback.map(str::to_string)) {
        Some(d) => d,
        None => {
            let (line, span) = rules.first().map_or((0, Span::default()), |(r, s)| (r.line, *s));
            refusals.push(Refusal {
                line,
                span,
                reason: format!(
                    "service `{service}` has no default: an HTTPRoute answers 404 where the filter makes no \
                     decision; add `default SUBSET` or pass --subsets STABLE,…"
                ),
            });
            return Err(refusals);
        }
    };
    if protocol == Protocol::Tcp {
        return lower_tcp(service, &rules, default);
    }

    let mut out: Vec<GwRule> = Vec::new();
    let mut caught_all = false;
    for (rule, span) in &rules {
        let mut refuse = |reason: String| refusals.push(Refusal { line: rule.line, span: *span, reason });
        let matches = match rule.when.as_ref() {
            None => Ok(Some(Vec::new())),
            Some(cond) => lower_cond(cond, ranking),
        };
        let matches = match matches {
            Ok(Some(m)) => m,
            Ok(None) => continue, // never holds: the rule never decides
            Err(reason) => {
                refuse(reason);
                continue;
            }
        };
        let action = match action(&rule.then) {
            Ok(a) => a,
            Err(reason) => {
                refuse(reason);
                continue;
            }
        };
        if let NativeAction::Split { weights, .. } = &action {
            if weights.len() > MAX_BACKEND_REFS {
                refuse(format!("a rule holds at most {MAX_BACKEND_REFS} backendRefs"));
                continue;
            }
        }
        if matches.len() > MAX_MATCHES_PER_RULE {
            refuse(format!(
                "this condition needs {} matches; a rule holds at most {MAX_MATCHES_PER_RULE}",
                matches.len()
            ));
            continue;
        }
        let always = matches.is_empty();
        if !caught_all {
            out.push(GwRule { line: Some(rule.line), span: Some(*span), matches, action });
        }
        // Later rules never decide in the policy; an implementation would rank their matches above this one.
        caught_all |= always;
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }
    if !caught_all {
        out.push(GwRule { line: None, span: None, matches: Vec::new(), action: NativeAction::Subset(default.clone()) });
    }
    let mut limits = Vec::new();
    if out.len() > MAX_RULES {
        limits.push(format!(
            "{} HTTPRoute rules (the policy's and the default); a route holds at most {MAX_RULES}",
            out.len()
        ));
    }
    let total: usize = out.iter().map(|r| r.matches.len().max(1)).sum();
    if total > MAX_MATCHES_PER_ROUTE {
        limits.push(format!("{total} matches in one HTTPRoute; a route holds at most {MAX_MATCHES_PER_ROUTE}"));
    }
    if let Some(reason) = limits.into_iter().next() {
        let (rule, span) = rules.last().map_or((0, Span::default()), |(r, s)| (r.line, *s));
        return Err(vec![Refusal { line: rule, span, reason }]);
    }
    if let Err(refused) = check_precedence(&out, ranking) {
        let (later, earlier, why) = *refused;
        let (rule, span) =
            rules.iter().find(|(r, _)| Some(r.line) == later.line).map_or((0, Span::default()), |(r, s)| (r.line, *s));
        let earlier = earlier.map_or("the default".to_string(), |l| format!("the rule on line {l}"));
        let which = match ranking {
            Ranking::Spec => "the Gateway API's precedence",
            Ranking::EnvoyGateway => "Envoy Gateway's precedence (internal/gatewayapi/sort.go)",
        };
        return Err(vec![Refusal {
            line: rule,
            span,
            reason: format!(
                "{which} ranks this rule's match ahead of {earlier} ({why}), and a request can match both: the \
                 HTTPRoute would decide this rule first where the policy decides {earlier} first"
            ),
        }]);
    }
    Ok(GwService { name: service.to_string(), protocol, rules: out, default })
}

/// A TCP service: no request to match, so only the first rule (unconditional) decides; `source` is refused.
fn lower_tcp(service: &str, rules: &[(&Rule, Span)], default: String) -> Result<GwService, Vec<Refusal>> {
    let mut refusals = Vec::new();
    let mut out = Vec::new();
    for (rule, span) in rules {
        if rule.when.is_some() {
            refusals.push(Refusal {
                line: rule.line,
                span: *span,
                reason: "a TCPRoute has no match at all: a connection's backend is chosen by weight alone, nothing \
                         reads the calling workload (`source`)"
                    .into(),
            });
            continue;
        }
        match action(&rule.then) {
            Ok(a) => {
                if out.is_empty() {
                    out.push(GwRule { line: Some(rule.line), span: Some(*span), matches: Vec::new(), action: a })
                }
            }
            Err(reason) => refusals.push(Refusal { line: rule.line, span: *span, reason }),
        }
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }
    if out.is_empty() {
        out.push(GwRule { line: None, span: None, matches: Vec::new(), action: NativeAction::Subset(default.clone()) });
    }
    Ok(GwService { name: service.to_string(), protocol: Protocol::Tcp, rules: out, default })
}

/// The rule's action: a subset, or weights in 0.01% steps (a per-request draw; sticky refused).
fn action(action: &Action) -> Result<NativeAction, String> {
    match action {
        Action::Route(subset) => Ok(NativeAction::Subset(subset.clone())),
        Action::Split(split) => {
            if split.by.is_some() {
                return Err("backendRefs weights are drawn per request; session persistence (GEP-1619, \
                            Experimental) pins a client to what the gateway first picked, not to a bucket of a key: \
                            a sticky split has no exact form"
                    .into());
            }
            let mut weights: Vec<(Option<String>, u32)> = Vec::new();
            let mut add = |subset: Option<String>, w: u32| {
                if w == 0 {
                    return;
                }
                match weights.iter_mut().find(|e| e.0 == subset) {
                    Some(e) => e.1 += w,
                    None => weights.push((subset, w)),
                }
            };
            for share in &split.to {
                add(Some(share.subset.clone()), share.weight);
            }
            add(None, BUCKETS.saturating_sub(split.to.iter().map(|s| s.weight).sum()));
            Ok(match weights.as_slice() {
                [(Some(only), _)] => NativeAction::Subset(only.clone()),
                _ => NativeAction::Split { weights, by: None },
            })
        }
    }
}

/// A condition as HTTPRoute matches; `Ok(None)` when it never holds.
fn lower_cond(cond: &Cond, ranking: Ranking) -> Result<Option<Vec<GwMatch>>, String> {
    precheck(cond)?;
    let dnf = native::cond::lower(cond, false, &Target::envoy(native::EnvoyVersion::LATEST))?;
    let mut out = Vec::new();
    for and in dnf {
        if let Some(m) = lower_and(and, ranking)? {
            if m.path.is_none() && m.method.is_none() && m.headers.is_empty() {
                return Ok(Some(Vec::new())); // one alternative always holds
            }
            out.push(m);
        }
    }
    Ok(if out.is_empty() { None } else { Some(out) })
}

/// Conditions refused before expansion, with the Gateway API's reason.
fn precheck(cond: &Cond) -> Result<(), String> {
    match cond {
        Cond::All(cs) | Cond::Any(cs) => cs.iter().try_for_each(precheck),
        Cond::Not(c) => precheck(c),
        Cond::Source { .. } => Err("`source` reads the calling workload's labels: an HTTPRoute matches nothing \
                                    about the caller"
            .into()),
        Cond::Query { .. } => Err("`query`: an HTTPRoute `queryParams` match is Envoy's QueryParameterMatcher in \
                                   Envoy Gateway and Istio, which compares the raw value (no percent-decoding) of the \
                                   first occurrence, while canary compares decoded values"
            .into()),
        Cond::Host(_) => Err("`host`: an HTTPRoute selects hosts per route (`hostnames`), not per rule, and a \
                              header match cannot name `:authority`"
            .into()),
        Cond::Cookie { .. } => Err("an HTTPRoute has no cookie match (Envoy Gateway's cookie matching is its own \
                                    HTTPRouteFilter extension, and a regex on the `cookie` header does not parse \
                                    cookies)"
            .into()),
        Cond::Method(m) if !METHODS.contains(&m.as_str()) => {
            Err(format!("`method {m}`: an HTTPRoute's `method` is one of {}", METHODS.join(", ")))
        }
        _ => Ok(()),
    }
}

/// A header name the `HTTPHeaderName` pattern admits (`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`, at most 256).
fn header_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// One AND of matchers as one match, `Ok(None)` when it contradicts itself.
fn lower_and(and: Vec<Atom>, ranking: Ranking) -> Result<Option<GwMatch>, String> {
    let mut m = GwMatch { path: None, method: None, headers: Vec::new(), atoms: Vec::new() };
    let mut prefix: Option<String> = None;
    for atom in &and {
        let Atom::Header { name, test, invert } = atom else {
            return Err("an HTTPRoute has no cookie match".into());
        };
        if *invert {
            return Err("an HTTPRoute match cannot negate (`not`, `!=`, `absent`): its matches are ORed and their \
                        fields ANDed, and no field inverts"
                .into());
        }
        match (name.as_str(), test) {
            (":path", HeaderTest::Prefix(p)) => match &prefix {
                Some(q) if q.starts_with(p.as_str()) => {}
                Some(q) if p.starts_with(q.as_str()) => prefix = Some(p.clone()),
                Some(_) => return Ok(None),
                None => prefix = Some(p.clone()),
            },
            (":method", HeaderTest::Exact(v)) => match &m.method {
                Some(had) if had != v => return Ok(None),
                _ => m.method = Some(v.clone()),
            },
            (n, _) if n.starts_with(':') => {
                return Err(format!("`{n}` is a pseudo-header: an HTTPRoute header match cannot name it"))
            }
            (n, test) => {
                if !header_name_ok(n) {
                    return Err(format!("`{n}` is not a header name an HTTPRoute accepts"));
                }
                let value = match test {
                    HeaderTest::Exact(v) => ValueMatch::Exact(v.clone()),
                    HeaderTest::Contains(l) => ValueMatch::Regex(format!(".*{}.*", re2_escape(l))),
                    HeaderTest::Present => ValueMatch::Regex(".*".into()),
                    // Implementation-specific (RE2 in Envoy Gateway and Istio) like `.*literal.*`, but the
                    // differential proof covers Envoy's routes only so far.
                    HeaderTest::Regex { .. } => {
                        return Err("a `~` with regex operators: its RE2 form is not yet written as an HTTPRoute \
                                    match"
                            .into())
                    }
                    other => return Err(format!("no HTTPRoute header match for {other:?}")),
                };
                let (ValueMatch::Exact(v) | ValueMatch::Regex(v)) = &value;
                if v.len() > 4096 {
                    return Err("a header match value holds at most 4096 characters".into());
                }
                match m.headers.iter().find(|(h, _)| h == n) {
                    Some((_, had)) if *had == value => {}
                    Some((_, ValueMatch::Exact(a))) if matches!(&value, ValueMatch::Exact(b) if a != b) => {
                        return Ok(None)
                    }
                    Some(_) => {
                        return Err(format!(
                            "this condition needs two tests of header `{n}` in one match, and an HTTPRoute considers \
                             only the first entry of a name"
                        ))
                    }
                    None => m.headers.push((n.to_string(), value)),
                }
            }
        }
    }
    if let Some(p) = prefix {
        if p == "/" {
            m.path = Some(PathMatch::Prefix(p));
        } else if ranking == Ranking::Spec {
            return Err(format!(
                "`path \"{}\"` is a string prefix and an HTTPRoute `PathPrefix` matches whole segments (`/abc` does not \
                 match `/abcd`); its exact form, a `RegularExpression` path, is implementation-specific and the spec \
                 does not rank it: exact with --implementation envoy-gateway only",
                p.escape_default()
            ));
        } else {
            m.path = Some(PathMatch::Regex(format!("{}.*", re2_escape(&p))));
        }
    }
    if m.headers.len() + usize::from(m.method.is_some()) > MAX_HEADERS_PER_MATCH {
        return Err(format!("a match holds at most {MAX_HEADERS_PER_MATCH} header matches"));
    }
    m.atoms = and;
    Ok(Some(m))
}

/// The ranking key of a match (`None`: a rule without matches, i.e. `PathPrefix /`): bigger ranks first.
pub fn rank(m: Option<&GwMatch>, ranking: Ranking) -> [usize; 4] {
    let Some(m) = m else { return [0; 4] };
    match ranking {
        // Exact paths are never emitted; a `PathPrefix /` is the default every match has.
        Ranking::Spec => [0, 1, usize::from(m.method.is_some()), m.headers.len()],
        Ranking::EnvoyGateway => {
            let (kind, count) = match &m.path {
                Some(PathMatch::Regex(r)) => (1, r.len()),
                Some(PathMatch::Prefix(p)) if p == "/" => (0, 0),
                Some(PathMatch::Prefix(p)) => (0, p.len()),
                None => (0, 0),
            };
            let method = usize::from(m.method.is_some());
            let exact = m.headers.iter().filter(|(_, v)| matches!(v, ValueMatch::Exact(_))).count() + method;
            [kind, count, m.headers.len() + method, exact]
        }
    }
}

/// The matches in the order the implementation tries them: a stable sort by descending rank (ties keep the
/// order written), as `sort.Stable(sort.Reverse(…))` leaves them in Envoy Gateway and rule order does in the spec.
pub fn ranked(rules: &[GwRule], ranking: Ranking) -> Vec<(usize, Option<usize>)> {
    let mut all: Vec<(usize, Option<usize>)> = Vec::new();
    for (r, rule) in rules.iter().enumerate() {
        if rule.matches.is_empty() {
            all.push((r, None));
        }
        all.extend((0..rule.matches.len()).map(|m| (r, Some(m))));
    }
    let key = |(r, m): &(usize, Option<usize>)| rank(m.map(|m| &rules[*r].matches[m]), ranking);
    all.sort_by_key(|e| std::cmp::Reverse(key(e)));
    all
}

/// `Err((later rule, earlier rule's line, why))` when the ranking puts a match of a later rule ahead of an
/// earlier rule's match that a request can also satisfy, with another action.
fn check_precedence(rules: &[GwRule], ranking: Ranking) -> Result<(), Box<(GwRule, Option<u32>, String)>> {
    let order = ranked(rules, ranking);
    for (i, &(r1, m1)) in order.iter().enumerate() {
        for &(r2, m2) in &order[i + 1..] {
            // r1 is tried before r2; wrong only when the policy tries r2 first.
            if r2 >= r1 || rules[r1].action == rules[r2].action {
                continue;
            }
            let a = m1.map(|m| &rules[r1].matches[m]);
            let b = m2.map(|m| &rules[r2].matches[m]);
            if disjoint(a, b) {
                continue;
            }
            let why = reason(a, b, ranking);
            return Err(Box::new((rules[r1].clone(), rules[r2].line, why)));
        }
    }
    Ok(())
}

fn reason(a: Option<&GwMatch>, b: Option<&GwMatch>, ranking: Ranking) -> String {
    let (ka, kb) = (rank(a, ranking), rank(b, ranking));
    let names: [&str; 4] = match ranking {
        Ranking::Spec => ["an exact path", "a longer path prefix", "a method match", "more header matches"],
        Ranking::EnvoyGateway => [
            "a regular-expression path",
            "a longer path",
            "more header matches, `method` counted",
            "more exact header matches",
        ],
    };
    let step = (0..4).find(|&i| ka[i] != kb[i]).unwrap_or(3);
    names[step].to_string()
}

/// Whether no request satisfies both matches (conservative: `false` unless two tests of one field contradict).
fn disjoint(a: Option<&GwMatch>, b: Option<&GwMatch>) -> bool {
    let (Some(a), Some(b)) = (a, b) else { return false };
    a.atoms.iter().any(|x| b.atoms.iter().any(|y| contradict(x, y)))
}

fn contradict(x: &Atom, y: &Atom) -> bool {
    let (Atom::Header { name: n1, test: t1, invert: false }, Atom::Header { name: n2, test: t2, invert: false }) =
        (x, y)
    else {
        return false;
    };
    if n1 != n2 {
        return false;
    }
    use HeaderTest::*;
    match (t1, t2) {
        (Exact(u), Exact(v)) => u != v,
        (Exact(u), Contains(l)) | (Contains(l), Exact(u)) => !u.contains(l.as_str()),
        (Exact(u), Prefix(p)) | (Prefix(p), Exact(u)) => !u.starts_with(p.as_str()),
        (Prefix(p), Prefix(q)) => !p.starts_with(q.as_str()) && !q.starts_with(p.as_str()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(src: &str, service: &str, ranking: Ranking) -> Result<GwService, Vec<Refusal>> {
        let c = canary_compiler::compile(src, "t.canary").unwrap_or_else(|_| panic!("compiles: {src}"));
        let protocol = c.config.services.iter().find(|s| s.name == service).map_or(Protocol::Http, |s| s.protocol);
        lower_service(&c.config, &c.spans, service, protocol, ranking, None)
    }

    #[test]
    fn headers_methods_and_paths_take_their_fields() {
        let s = lower(
            "service f {\n  header x = \"a\" and method GET and path \"/api\" -> v2\n  header ua ~ \"Chrome\" -> v3\n  default v1\n}\n",
            "f",
            Ranking::EnvoyGateway,
        )
        .unwrap();
        assert_eq!(s.rules.len(), 3);
        let m = &s.rules[0].matches[0];
        assert_eq!(m.path, Some(PathMatch::Regex("/api.*".into())));
        assert_eq!(m.method.as_deref(), Some("GET"));
        assert_eq!(m.headers, vec![("x".into(), ValueMatch::Exact("a".into()))]);
        assert_eq!(s.rules[1].matches[0].headers, vec![("ua".into(), ValueMatch::Regex(".*Chrome.*".into()))]);
        assert!(s.rules[2].matches.is_empty());
        // The spec does not rank a regular-expression path.
        let err = lower("service f {\n  path \"/api\" -> v2\n  default v1\n}\n", "f", Ranking::Spec).unwrap_err();
        assert!(err[0].reason.contains("PathPrefix"), "{err:?}");
    }

    #[test]
    fn what_a_route_cannot_say_is_refused_with_the_reason() {
        for (cond, why) in [
            ("cookie u=t", "cookie"),
            ("not header x present", "negate"),
            ("header x != \"a\"", "negate"),
            ("header x absent", "negate"),
            ("source version=v2", "caller"),
            ("query a=b", "raw value"),
            ("host \"a.b\"", "hostnames"),
            ("method FOO", "one of"),
            ("header x ~ \"a\" and header x ~ \"b\"", "first entry"),
            ("header ua ~ \"Chrome/[0-9]+\"", "regex operators"),
        ] {
            let src = format!("service f {{\n  {cond} -> v2\n  default v1\n}}\n");
            let err = lower(&src, "f", Ranking::EnvoyGateway).unwrap_err();
            assert_eq!(err[0].line, 2, "{cond}");
            assert!(err[0].reason.contains(why), "{cond}: {}", err[0].reason);
        }
        let sticky = lower("service f {\n  50% v2 by cookie u\n  default v1\n}\n", "f", Ranking::Spec).unwrap_err();
        assert!(sticky[0].reason.contains("sticky"));
    }

    #[test]
    fn precedence_that_would_reorder_overlapping_rules_is_refused_naming_both() {
        // Spec and Envoy Gateway alike rank the two-header match first; a request with x=a and y=b differs.
        let src =
            "service f {\n  header x = \"a\" -> v2\n  header x = \"a\" and header y = \"b\" -> v3\n  default v1\n}\n";
        for ranking in [Ranking::Spec, Ranking::EnvoyGateway] {
            let err = lower(src, "f", ranking).unwrap_err();
            assert_eq!(err[0].line, 3);
            assert!(err[0].reason.contains("line 2") && err[0].reason.contains("more header"), "{err:?}");
        }
        // Disjoint values cannot both hold: fine.
        let ok =
            "service f {\n  header x = \"a\" -> v2\n  header x = \"b\" and header y = \"b\" -> v3\n  default v1\n}\n";
        assert!(lower(ok, "f", Ranking::Spec).is_ok());
        // Same action: fine.
        let same =
            "service f {\n  header x = \"a\" -> v2\n  header y = \"b\" and header z = \"c\" -> v2\n  default v1\n}\n";
        assert!(lower(same, "f", Ranking::EnvoyGateway).is_ok());
        // The spec ranks a method above headers; Envoy Gateway counts it as one more header.
        let method = "service f {\n  header x = \"a\" -> v2\n  method GET -> v3\n  default v1\n}\n";
        assert!(lower(method, "f", Ranking::Spec).unwrap_err()[0].reason.contains("method"));
        assert!(lower(method, "f", Ranking::EnvoyGateway).is_ok());
    }

    #[test]
    fn a_catch_all_ends_the_route_and_splits_keep_their_shares() {
        let s = lower(
            "service f {\n  header x = \"a\" -> v3\n  20% v2\n  header y = \"b\" -> v3\n  default v1\n}\n",
            "f",
            Ranking::Spec,
        )
        .unwrap();
        assert_eq!(s.rules.len(), 2);
        assert_eq!(
            s.rules[1].action,
            NativeAction::Split { weights: vec![(Some("v2".into()), 2000), (None, 8000)], by: None }
        );
        let tcp = lower("service t tcp {\n  20% v2\n  default v1\n}\n", "t", Ranking::Spec).unwrap();
        assert_eq!(tcp.rules.len(), 1);
        assert!(lower("service t tcp {\n  source version=v2 -> v2\n  default v1\n}\n", "t", Ranking::Spec).is_err());
        assert!(lower("service f {\n  header x = \"a\" -> v2\n}\n", "f", Ranking::Spec).unwrap_err()[0]
            .reason
            .contains("no default"));
    }
}
