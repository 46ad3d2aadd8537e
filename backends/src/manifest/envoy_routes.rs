//! The native lowering written as Envoy configuration: [`NativeService`] routes as `RouteConfiguration` routes
//! (HTTP) or `tcp_proxy` weighted clusters (TCP). No wasm filter runs: Envoy's own route matching decides.

use canary_eval::config::StickyKey;
use serde_json::{json, Map, Value};

use crate::native::{Atom, HeaderTest, NativeAction, NativeService};
use crate::route_settings::{self, EnvoyFields, ServiceRoutes};

mod tree;

/// Names the cluster of a subset (`None`: the proxy's fallback subset, for requests nothing decides).
pub type ClusterOf<'a> = &'a dyn Fn(Option<&str>) -> String;

/// How a virtual host routes: a list of routes, or one generic matcher (`VirtualHost.routes` and
/// `VirtualHost.matcher` are mutually exclusive).
#[derive(Debug, Clone, PartialEq)]
pub enum RouteTable {
    Routes(Vec<Value>),
    Matcher(Value),
}

impl RouteTable {
    /// The virtual host's routing field: `("routes", [...])` or `("matcher", {...})`.
    pub fn field(self) -> (&'static str, Value) {
        match self {
            RouteTable::Routes(routes) => ("routes", Value::Array(routes)),
            RouteTable::Matcher(matcher) => ("matcher", matcher),
        }
    }

    /// The routes, when it is a list.
    pub fn routes(&self) -> Option<&[Value]> {
        match self {
            RouteTable::Routes(routes) => Some(routes),
            RouteTable::Matcher(_) => None,
        }
    }
}

/// The routes for one HTTP service, in evaluation order, then the default route (the list form, whatever the
/// service's layout).
pub fn http_routes(service: &NativeService, cluster: ClusterOf<'_>) -> Vec<Value> {
    flatten(rule_routes(service, cluster, None), default_route(service, cluster, None))
}

/// The service's route table as its layout says ([`crate::native::tables`]), carrying the service's route
/// settings: each rule's routes its profile's (else the service's), the default route the service's (mirrors included).
pub fn http_route_table(
    service: &NativeService,
    cluster: ClusterOf<'_>,
    settings: &ServiceRoutes,
    mirror_cluster: &dyn Fn(&str) -> String,
) -> Result<RouteTable, String> {
    let fields = if settings.is_empty() {
        None
    } else {
        let all = route_settings::envoy_fields(&settings.all, mirror_cluster)?;
        let mut per_rule = Vec::new();
        for route in &service.routes {
            per_rule.push(route_settings::envoy_fields(settings.for_rule(route.span), mirror_cluster)?);
        }
        Some((per_rule, all))
    };
    let fields = fields.as_ref().map(|(per_rule, all)| (per_rule.as_slice(), all));
    let rules = rule_routes(service, cluster, fields);
    let default = default_route(service, cluster, fields);
    if service.layout.is_list() {
        return Ok(RouteTable::Routes(flatten(rules, default)));
    }
    Ok(RouteTable::Matcher(tree::matcher(service, &rules, &default)))
}

fn flatten(rules: Vec<Vec<Value>>, default: Value) -> Vec<Value> {
    let mut routes: Vec<Value> = rules.into_iter().flatten().collect();
    routes.push(default);
    routes
}

/// Each rule's list-form routes, one per alternative, in order.
fn rule_routes(
    service: &NativeService,
    cluster: ClusterOf<'_>,
    settings: Option<(&[EnvoyFields], &EnvoyFields)>,
) -> Vec<Vec<Value>> {
    let mut rules = Vec::new();
    for (i, route) in service.routes.iter().enumerate() {
        let mut routes = Vec::new();
        for (k, and) in route.matches.iter().enumerate() {
            let mut r#match = json!({ "prefix": "/" });
            let headers: Vec<Value> = and.iter().filter_map(header_matcher).collect();
            let cookies: Vec<Value> = and.iter().filter_map(cookie_matcher).collect();
            if !headers.is_empty() {
                r#match["headers"] = Value::Array(headers);
            }
            if !cookies.is_empty() {
                r#match["cookies"] = Value::Array(cookies);
            }
            let mut out = json!({
                "name": format!("{}-line{}-{k}", service.name, route.line),
                "match": r#match,
                "route": route_action(&route.action, cluster),
            });
            if let Some(fields) = settings.and_then(|(per_rule, _)| per_rule.get(i)) {
                route_settings::apply_envoy(&mut out, fields);
            }
            routes.push(out);
        }
        rules.push(routes);
    }
    rules
}

fn default_route(
    service: &NativeService,
    cluster: ClusterOf<'_>,
    settings: Option<(&[EnvoyFields], &EnvoyFields)>,
) -> Value {
    let mut default = json!({
        "name": format!("{}-default", service.name),
        "match": { "prefix": "/" },
        "route": { "cluster": cluster(service.default.as_deref()) },
    });
    if let Some((_, all)) = settings {
        route_settings::apply_envoy(&mut default, all);
    }
    default
}

/// The `tcp_proxy` fields choosing the cluster for a TCP service (`cluster` or `weighted_clusters`): its one
/// decided action, else the default. A TCP split is drawn per connection, so a sticky key never applies.
pub fn tcp_cluster(service: &NativeService, cluster: ClusterOf<'_>) -> Map<String, Value> {
    let (field, value) = match service.routes.first().map(|r| &r.action) {
        Some(NativeAction::Subset(s)) => ("cluster", json!(cluster(Some(s)))),
        Some(NativeAction::Split { weights, .. }) => ("weighted_clusters", weighted(weights, cluster)),
        None => ("cluster", json!(cluster(service.default.as_deref()))),
    };
    Map::from_iter([(field.to_string(), value)])
}

/// Whether any matcher needs an RE2 program (the bootstrap then raises Envoy's program-size cap).
pub fn uses_regex(service: &NativeService) -> bool {
    service.routes.iter().flat_map(|r| r.matches.iter().flatten()).any(|a| {
        matches!(
            a,
            Atom::Header { test: HeaderTest::Host(_) | HeaderTest::ContainsAny(_) | HeaderTest::Regex { .. }, .. }
        )
    })
}

fn route_action(action: &NativeAction, cluster: ClusterOf<'_>) -> Value {
    match action {
        NativeAction::Subset(s) => json!({ "cluster": cluster(Some(s)) }),
        NativeAction::Split { weights, by: None } => json!({ "weighted_clusters": weighted(weights, cluster) }),
        NativeAction::Split { weights, by: Some(key) } => {
            // Envoy hashes the key with xxh64 (seed 0) and picks `hash % sum of weights` along the list — the
            // evaluator's buckets. A request without the key gets a random pick, as in the filter.
            let mut clusters = weighted(weights, cluster);
            clusters["use_hash_policy"] = json!(true);
            let policy = match key {
                StickyKey::Cookie(name) => json!({ "cookie": { "name": name } }),
                StickyKey::Header(name) => json!({ "header": { "header_name": name } }),
            };
            json!({ "weighted_clusters": clusters, "hash_policy": [policy] })
        }
    }
}

/// `WeightedCluster` for split weights in interval order (`None`: the proxy's fallback subset).
fn weighted(weights: &[(Option<String>, u32)], cluster: ClusterOf<'_>) -> Value {
    let clusters: Vec<Value> =
        weights.iter().map(|(s, w)| json!({ "name": cluster(s.as_deref()), "weight": w })).collect();
    json!({ "clusters": clusters })
}

fn header_matcher(atom: &Atom) -> Option<Value> {
    let Atom::Header { name, test, invert } = atom else { return None };
    let mut m = json!({ "name": name });
    match test {
        HeaderTest::Exact(v) => m["string_match"] = json!({ "exact": v }),
        HeaderTest::Contains(v) => m["string_match"] = json!({ "contains": v }),
        HeaderTest::Prefix(v) => m["string_match"] = json!({ "prefix": v }),
        HeaderTest::Present => m["present_match"] = json!(true),
        HeaderTest::Host(h) => m["string_match"] = json!({ "safe_regex": { "regex": host_regex(h) } }),
        HeaderTest::ContainsAny(all) => {
            m["string_match"] = json!({ "safe_regex": { "regex": contains_any_regex(all) } })
        }
        HeaderTest::Regex { re2, .. } => m["string_match"] = json!({ "safe_regex": { "regex": re2 } }),
    }
    if *invert {
        m["invert_match"] = json!(true);
        if !test.matches_empty() {
            // An inverted value matcher skips an absent header; as "" it fails the test, so `not` holds.
            m["treat_missing_header_as_empty"] = json!(true);
        }
    }
    Some(m)
}

fn cookie_matcher(atom: &Atom) -> Option<Value> {
    let Atom::Cookie { name, value, invert } = atom else { return None };
    let mut m = json!({ "name": name, "string_match": { "exact": value } });
    if *invert {
        m["invert_match"] = json!(true);
    }
    Some(m)
}

/// RE2 full match of a value in which one of `literals` occurs.
pub fn contains_any_regex(literals: &[String]) -> String {
    let alternatives: Vec<String> = literals.iter().map(|l| re2_escape(l)).collect();
    format!(".*(?:{}).*", alternatives.join("|"))
}

/// `text` as an RE2 (and Go `regexp`, which Istio's webhook uses) literal: the metacharacters escaped, the
/// rest as is (both engines refuse some escapes of ordinary characters, e.g. letters).
pub fn re2_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// RE2 full match of an `:authority` whose host is `host` (ASCII case-insensitive), with or without a port:
/// the evaluator strips everything from the last `:`. Letters are spelled `[fF]`: `(?i)` would also fold
/// Unicode (`k` and the Kelvin sign).
pub fn host_regex(host: &str) -> String {
    let mut re = String::new();
    for c in host.chars() {
        match c {
            'a'..='z' => {
                re.push('[');
                re.push(c);
                re.push(c.to_ascii_uppercase());
                re.push(']');
            }
            '.' => re.push_str("\\."),
            c => re.push(c),
        }
    }
    re.push_str("(:[^:]*)?");
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_regexes_spell_out_cases() {
        assert_eq!(host_regex("a-1.b"), "[aA]-1\\.[bB](:[^:]*)?");
    }

    #[test]
    fn literals_are_escaped_for_re2_and_go() {
        assert_eq!(re2_escape("Edg/1.0 (x_y)"), "Edg/1\\.0 \\(x_y\\)");
        assert_eq!(re2_escape("a\\b[c]^$"), "a\\\\b\\[c\\]\\^\\$");
        assert_eq!(re2_escape("naïve"), "naïve");
        assert_eq!(contains_any_regex(&["a.b".into(), "c".into()]), ".*(?:a\\.b|c).*");
    }
}
