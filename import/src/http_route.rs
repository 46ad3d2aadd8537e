//! Gateway API HTTPRoutes and TCPRoutes → the policy that decides the same, honouring the spec's precedence.
//!
//! An implementation does not try an HTTPRoute's rules in the order written: it ranks every match (Gateway API
//! v1.5 `apis/v1/httproute_types.go`, `HTTPRouteRule`: exact path, longest prefix, method, most headers, most
//! query params, then rule order). The import ranks the matches the same way (a stable sort) and writes one
//! policy rule per match in that order, so first-match in the policy is precedence in the route. A
//! `RegularExpression` path has no rank in the spec: it is ranked as Envoy Gateway v1.9 ranks it
//! (`internal/gatewayapi/sort.go`: above prefixes, by length; `method` counted as a header), with a warning.
//!
//! Carried exactly: `PathPrefix: /`; a `RegularExpression` path `LITERAL.*` (RE2-escaped literal, what
//! `canaryc manifest --kind gateway-api` writes for `path "/p"`); header `Exact`; header `RegularExpression`
//! `.*LITERAL.*` (a substring), `.*` (present); `method`. A subset is the suffix of a backendRef
//! `SERVICE-SUBSET`; weights become a split. Everything else is an error naming its YAML path.

use canary_eval::config::{Action, Cond, Protocol, Rule, RuleSet, Service, Share, Split, Test, BUCKETS};

use super::report::Report;
use super::yaml::{Field, Node, Path};

const API: [&str; 2] = ["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"];
const TCP_API: [&str; 2] = ["gateway.networking.k8s.io/v1alpha2", "gateway.networking.k8s.io/v1"];

/// One match, ranked.
struct Ranked {
    /// The spec's `[method, headers]` (every path carried is `/` or a regex), or Envoy Gateway's `[kind, length,
    /// headers with method, exact ones]` once a regex path is present.
    key: [usize; 4],
    eg: [usize; 4],
    cond: Option<Cond>,
    target: Vec<(String, u32)>,
}

/// Reads a route's `spec` (`kind` HTTPRoute or TCPRoute) named `name`. `None` when refused (reported).
pub fn route(kind: &str, api: &str, name: &str, spec: Node<'_>, report: &mut Report) -> Option<(Service, Vec<String>)> {
    let tcp = kind == "TCPRoute";
    if !(if tcp { TCP_API.contains(&api) } else { API.contains(&api) }) {
        report.error(
            &Path::root().key("apiVersion"),
            format!("{kind} is read as {}", if tcp { TCP_API } else { API }.join(", ")),
        );
        return None;
    }
    let schema = [Field::Inert("parentRefs"), Field::Inert("hostnames"), Field::Read("rules")];
    let errors_before = report.error_count();
    let fields = spec.fields(report, &schema, "a route spec")?;
    let Some((rules, rules_path)) = fields.get("rules") else {
        report.error(fields.path(), "a route without rules");
        return None;
    };
    let mut service: Option<String> = None;
    let mut ranked: Vec<Ranked> = Vec::new();
    let mut regex_path = false;
    for (i, rule) in Node::new(rules, rules_path).seq(report, "rules").unwrap_or_default().iter().enumerate() {
        let rp = rules_path.index(i);
        let rule_schema: &[Field] = if tcp {
            &[Field::Read("backendRefs"), Field::Inert("name")]
        } else {
            &[
                Field::Read("matches"),
                Field::Read("backendRefs"),
                Field::Inert("name"),
                Field::Refused("filters", "a policy only chooses a subset: the filters would be lost"),
                Field::Refused("timeouts", "a policy only chooses a subset: the timeouts would be lost"),
                Field::Refused("retry", "a policy only chooses a subset: the retry policy would be lost"),
                Field::Refused(
                    "sessionPersistence",
                    "session persistence pins a client to the backend it had: no policy form",
                ),
            ]
        };
        let Some(rf) = Node::new(rule, &rp).fields(report, rule_schema, "a rule") else { continue };
        let Some((refs, refs_path)) = rf.get("backendRefs") else {
            report.error(&rp, "a rule without backendRefs answers 500: no policy form");
            continue;
        };
        let Some(target) = backends(Node::new(refs, refs_path), &mut service, report) else { continue };
        match rf.get("matches") {
            None => ranked.push(Ranked { key: [0; 4], eg: [0; 4], cond: None, target: target.clone() }),
            Some((list, lp)) => {
                let items = Node::new(list, lp).seq(report, "matches").unwrap_or_default();
                if items.is_empty() {
                    ranked.push(Ranked { key: [0; 4], eg: [0; 4], cond: None, target: target.clone() });
                }
                for (j, m) in items.iter().enumerate() {
                    let mp = lp.index(j);
                    if let Some((key, eg, cond)) = one_match(Node::new(m, &mp), report) {
                        regex_path |= eg[0] == 1;
                        ranked.push(Ranked { key, eg, cond, target: target.clone() });
                    }
                }
            }
        }
    }
    if report.error_count() > errors_before {
        return None;
    }
    let Some(service) = service else {
        report.error(rules_path, "no backendRef names the service");
        return None;
    };
    if regex_path {
        report.warning(
            rules_path,
            "a RegularExpression path has no rank in the Gateway API spec: ranked as Envoy Gateway v1.9 ranks it \
             (above every prefix, longer first; method counted as a header match)",
        );
        for r in &mut ranked {
            r.key = r.eg;
        }
    }
    // Stable: ties keep rule and match order.
    ranked.sort_by_key(|r| std::cmp::Reverse(r.key));
    let mut out = Vec::new();
    let mut default = None;
    for r in ranked {
        match (r.cond, r.target.as_slice()) {
            (None, [(only, _)]) => {
                default = Some(only.clone());
                break;
            }
            (None, shares) => {
                let (biggest, _) = shares.iter().max_by_key(|s| s.1).cloned().unwrap_or_default();
                let to = shares
                    .iter()
                    .filter(|s| s.0 != biggest)
                    .map(|(s, w)| Share { subset: s.clone(), weight: *w })
                    .collect();
                out.push(Rule { line: 0, when: None, then: Action::Split(Split { to, by: None }) });
                default = Some(biggest);
                break;
            }
            (Some(cond), [(only, _)]) => {
                out.push(Rule { line: 0, when: Some(cond), then: Action::Route(only.clone()) })
            }
            (Some(cond), shares) => {
                let to = shares.iter().map(|(s, w)| Share { subset: s.clone(), weight: *w }).collect();
                out.push(Rule { line: 0, when: Some(cond), then: Action::Split(Split { to, by: None }) });
            }
        }
    }
    let Some(default) = default else {
        report.error(rules_path, "no rule matches every request: the route answers 404 where a policy has a default");
        return None;
    };
    let protocol = if tcp { Protocol::Tcp } else { Protocol::Http };
    let note = format!("{kind} {name}: backendRef {service}-SUBSET is subset SUBSET");
    Some((Service { name: service, protocol, rules: RuleSet { rules: out, default: Some(default) } }, vec![note]))
}

/// The backendRefs as (subset, basis points); every one must name `SERVICE-SUBSET` of one service.
fn backends(node: Node<'_>, service: &mut Option<String>, report: &mut Report) -> Option<Vec<(String, u32)>> {
    let mut refs = Vec::new();
    for (i, item) in node.seq(report, "backendRefs")?.iter().enumerate() {
        let at = node.path.index(i);
        let schema = [
            Field::Read("name"),
            Field::Inert("port"),
            Field::Read("weight"),
            Field::Read("kind"),
            Field::Read("group"),
        ];
        let f = Node::new(item, &at).fields(report, &schema, "a backendRef")?;
        for k in ["kind", "group"] {
            if let Some((v, p)) = f.get(k) {
                let v = Node::new(v, p).str(report, k)?;
                if !(v == "Service" || v.is_empty()) {
                    report.error(p, format!("a backendRef to a {v}: only Services are subsets"));
                    return None;
                }
            }
        }
        let name = f.get("name").and_then(|(v, p)| Node::new(v, p).str(report, "name"))?;
        let weight = match f.get("weight") {
            Some((v, p)) => Node::new(v, p).int(report, "weight", 0..=1_000_000)?,
            None => 1,
        };
        let Some((svc, subset)) = name.rsplit_once('-').filter(|(s, b)| !s.is_empty() && !b.is_empty()) else {
            report.error(
                &at.key("name"),
                format!("`{name}` is not SERVICE-SUBSET: the subset a backendRef stands for is its name's suffix"),
            );
            return None;
        };
        match service {
            Some(s) if s != svc => {
                report.error(
                    &at.key("name"),
                    format!("`{name}` is not a subset of service `{s}`: one route, one service"),
                );
                return None;
            }
            _ => *service = Some(svc.to_string()),
        }
        if weight > 0 {
            refs.push((subset.to_string(), weight));
        }
    }
    let total: i64 = refs.iter().map(|r| r.1).sum();
    if total == 0 {
        report.error(node.path, "every weight is 0: the route answers 500, no policy form");
        return None;
    }
    let mut out = Vec::new();
    for (subset, w) in refs {
        let basis = i128::from(w) * i128::from(BUCKETS);
        if basis % i128::from(total) != 0 {
            report.error(node.path, format!("weight {w} of {total} is not a multiple of 0.01%: a policy's shares are"));
            return None;
        }
        out.push((subset, u32::try_from(basis / i128::from(total)).unwrap_or(BUCKETS)));
    }
    Some(out)
}

/// One match: its spec rank key `[exact path, prefix length, method, headers, query]` (or, when the path is a
/// regex, `[kind, length, method, headers, exact headers]` for Envoy Gateway's key), the condition, and whether
/// the path was a regex.
fn one_match(node: Node<'_>, report: &mut Report) -> Option<([usize; 4], [usize; 4], Option<Cond>)> {
    let schema = [
        Field::Read("path"),
        Field::Read("headers"),
        Field::Read("method"),
        Field::Refused(
            "queryParams",
            "Envoy compares query values raw (no percent-decoding), canary decoded: no exact form",
        ),
    ];
    let f = node.fields(report, &schema, "a match")?;
    let mut all = Vec::new();
    let mut path_key = [0, 0];
    if let Some((p, pp)) = f.get("path") {
        let pf = Node::new(p, pp).fields(report, &[Field::Read("type"), Field::Read("value")], "a path match")?;
        let kind = pf.get("type").and_then(|(v, p)| Node::new(v, p).str(report, "type")).unwrap_or("PathPrefix");
        let value = pf.get("value").and_then(|(v, p)| Node::new(v, p).str(report, "value")).unwrap_or("/");
        match kind {
            "PathPrefix" if value == "/" => {}
            "RegularExpression" => match literal_prefix(value) {
                Some(prefix) => {
                    path_key = [1, value.len()];
                    all.push(Cond::PathPrefix(prefix));
                }
                None => {
                    report.error(pp, format!("path regex {value:?}: only `LITERAL.*` (a path prefix) is carried"));
                    return None;
                }
            },
            "PathPrefix" => {
                report.error(pp, format!("PathPrefix {value:?} matches whole segments (not `{value}x`): a policy `path` is a string prefix, and its segment form needs two alternatives the import does not write"));
                return None;
            }
            other => {
                report.error(pp, format!("a path match of type {other} is not carried"));
                return None;
            }
        }
    }
    let (mut headers, mut exact) = (0, 0);
    if let Some((h, hp)) = f.get("headers") {
        for (i, item) in Node::new(h, hp).seq(report, "headers")?.iter().enumerate() {
            let at = hp.index(i);
            let hf = Node::new(item, &at).fields(
                report,
                &[Field::Read("type"), Field::Read("name"), Field::Read("value")],
                "a header match",
            )?;
            let kind = hf.get("type").and_then(|(v, p)| Node::new(v, p).str(report, "type")).unwrap_or("Exact");
            let name = hf.get("name").and_then(|(v, p)| Node::new(v, p).str(report, "name"))?.to_ascii_lowercase();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
                report.error(&at, format!("{name:?} is not a header name"));
                return None;
            }
            let value = hf.get("value").and_then(|(v, p)| Node::new(v, p).str(report, "value"))?;
            let test = match kind {
                "Exact" => {
                    exact += 1;
                    Test::Eq(value.to_string())
                }
                "RegularExpression" if value == ".*" => Test::Present,
                "RegularExpression" => {
                    match value.strip_prefix(".*").and_then(|v| v.strip_suffix(".*")).and_then(unescape) {
                        Some(lit) if !lit.is_empty() => Test::Regex(regex_lite_escape(&lit)),
                        _ => {
                            report
                                .error(&at, format!("header regex {value:?}: only `.*LITERAL.*` and `.*` are carried"));
                            return None;
                        }
                    }
                }
                other => {
                    report.error(&at, format!("a header match of type {other} is not carried"));
                    return None;
                }
            };
            headers += 1;
            all.push(Cond::Header { name, test });
        }
    }
    let mut method = 0;
    if let Some((m, mp)) = f.get("method") {
        method = 1;
        let method = Node::new(m, mp).str(report, "method")?;
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            report.error(mp, format!("{method:?} is not an HTTPRoute method"));
            return None;
        }
        all.push(Cond::Method(method.to_string()));
    }
    let key = [method, headers, 0, 0];
    let eg = [path_key[0], path_key[1], headers + method, exact + method];
    let cond = match all.len() {
        0 => None,
        1 => all.pop(),
        _ => Some(Cond::All(all)),
    };
    Some((key, eg, cond))
}

/// `LITERAL.*` with LITERAL RE2-escaped → LITERAL.
fn literal_prefix(regex: &str) -> Option<String> {
    unescape(regex.strip_suffix(".*")?)
}

/// An RE2-escaped literal (`\.` etc., no operators) → its text.
fn unescape(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let next = chars.next()?;
                if !"\\.+*?()|[]{}^$".contains(next) {
                    return None;
                }
                out.push(next);
            }
            c if "\\.+*?()|[]{}^$".contains(c) => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// A literal as a regex-lite pattern that searches for it.
fn regex_lite_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
