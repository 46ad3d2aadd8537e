//! What Envoy Gateway v1.9.0 makes of an HTTPRoute's rules for the listener it is attached to, for the fields
//! `canaryc manifest --kind gateway-api` writes: a test oracle, so the Gateway API form is checked in real
//! Envoy without a cluster or a control plane.
//!
//! Follows envoyproxy/gateway at tag v1.9.0:
//! * `internal/gatewayapi/route.go`, `processHTTPRouteRule` (lines 1152–1330): a rule without matches is one
//!   IR route without a path match; otherwise one IR route per match; `PathPrefix` → `Prefix`, `Exact` →
//!   `Exact`, `RegularExpression` → `SafeRegex`; header `Exact`/`RegularExpression` → IR header matches of the
//!   same kind; `method` → one more header match on `:method`, `Exact` (lines 1292–1297).
//! * `internal/gatewayapi/sort.go`, `XdsIRRoutes.Less` and `sortXdsIRMap`: the routes are sorted with
//!   `sort.Stable(sort.Reverse(…))` by path type (Exact > RegularExpression > PathPrefix), path length (`/`
//!   counts 0), number of header matches, number of exact header matches, (cookies, query params).
//! * `internal/xds/translator/route.go`, `buildXdsRouteMatch` / `buildPathMatch` / `buildXdsStringMatcher`
//!   (lines 198–330): no path → `prefix: /`; `Prefix` `/` → `prefix: /`, any other prefix →
//!   `path_separated_prefix` with a trailing `/` trimmed; `SafeRegex` → `safe_regex`; header matches →
//!   `HeaderMatcher.string_match` (`exact` / `safe_regex`).
//! * Backends: one destination → its cluster; several weighted backendRefs → weighted clusters (Envoy
//!   Gateway usually writes one cluster with weighted localities — the same per-request draw; `route.go`
//!   `buildXdsRouteAction`); a zero weight is dropped (gatewayapi `route.go` line 348).
//!
//! Any field it does not model is an error, so the oracle never silently narrows what it checks.

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

/// The Envoy routes, in the order Envoy Gateway emits them, for an HTTPRoute's `spec`. `cluster` names a
/// backendRef's cluster.
pub fn http_routes(spec: &Value, cluster: &dyn Fn(&str) -> String) -> Result<Vec<Value>> {
    known(spec, &["parentRefs", "hostnames", "rules"], "spec")?;
    let rules = spec["rules"].as_array().context("HTTPRoute without rules")?;
    // (sort key, envoy route); built in rule and match order, then stably sorted.
    let mut ir: Vec<([usize; 4], Value)> = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("rules[{i}]");
        known(rule, &["name", "matches", "backendRefs"], &at)?;
        let action = action(&rule["backendRefs"], cluster).with_context(|| format!("{at}.backendRefs"))?;
        // Every match is read (an unmodelled field is an error) before a rule without backends is dropped.
        let mut matches = Vec::new();
        match rule.get("matches").and_then(Value::as_array) {
            Some(list) if !list.is_empty() => {
                for (j, m) in list.iter().enumerate() {
                    matches.push(route_match(m).with_context(|| format!("{at}.matches[{j}]"))?);
                }
            }
            _ => matches.push(([0; 4], json!({ "prefix": "/" }))),
        }
        let Some(action) = action else { continue };
        for (key, route_match) in matches {
            ir.push((key, json!({ "match": route_match, "route": action })));
        }
    }
    // sort.Stable(sort.Reverse(XdsIRRoutes)): descending by key, ties in the order built.
    ir.sort_by_key(|r| std::cmp::Reverse(r.0));
    Ok(ir.into_iter().map(|(_, r)| r).collect())
}

fn known(value: &Value, fields: &[&str], at: &str) -> Result<()> {
    if let Some(unknown) = value.as_object().and_then(|o| o.keys().find(|k| !fields.contains(&k.as_str()))) {
        bail!("{at}.{unknown}: not modelled by the oracle");
    }
    Ok(())
}

/// A match's Envoy `RouteMatch` and its sort key `[path type, path length, headers, exact headers]`.
fn route_match(m: &Value) -> Result<([usize; 4], Value)> {
    known(m, &["path", "headers", "method"], "match")?;
    let mut out = Map::new();
    let (mut kind, mut length) = (0, 0);
    match m.get("path") {
        None => {
            out.insert("prefix".into(), json!("/"));
        }
        Some(path) => {
            known(path, &["type", "value"], "path")?;
            let value = path["value"].as_str().context("path.value")?;
            match path["type"].as_str().unwrap_or("PathPrefix") {
                "PathPrefix" if value == "/" => {
                    out.insert("prefix".into(), json!("/"));
                }
                "PathPrefix" => {
                    length = value.len();
                    out.insert("path_separated_prefix".into(), json!(value.trim_end_matches('/')));
                }
                "Exact" => {
                    (kind, length) = (2, value.len());
                    out.insert("path".into(), json!(value));
                }
                "RegularExpression" => {
                    (kind, length) = (1, value.len());
                    out.insert("safe_regex".into(), json!({ "regex": value }));
                }
                other => bail!("path.type {other}: not modelled"),
            }
        }
    }
    let mut headers = Vec::new();
    let mut exact = 0;
    for h in m.get("headers").and_then(Value::as_array).into_iter().flatten() {
        known(h, &["type", "name", "value"], "headers[]")?;
        let name = h["name"].as_str().context("headers[].name")?;
        let value = h["value"].as_str().context("headers[].value")?;
        let string_match = match h["type"].as_str().unwrap_or("Exact") {
            "Exact" => {
                exact += 1;
                json!({ "exact": value })
            }
            "RegularExpression" => json!({ "safe_regex": { "regex": value } }),
            other => bail!("headers[].type {other}: not modelled"),
        };
        headers.push(json!({ "name": name, "string_match": string_match }));
    }
    if let Some(method) = m.get("method") {
        exact += 1;
        headers.push(json!({ "name": ":method", "string_match": { "exact": method.as_str().context("method")? } }));
    }
    let count = headers.len();
    if !headers.is_empty() {
        out.insert("headers".into(), Value::Array(headers));
    }
    Ok(([kind, length, count, exact], Value::Object(out)))
}

/// The route action; `None` when every weight is zero (Envoy Gateway then answers 500 for the rule, which
/// `canaryc` never writes).
fn action(backends: &Value, cluster: &dyn Fn(&str) -> String) -> Result<Option<Value>> {
    let list = backends.as_array().context("a list of backendRefs")?;
    let mut clusters = Vec::new();
    for b in list {
        known(b, &["name", "port", "weight"], "backendRefs[]")?;
        let weight = b.get("weight").map_or(Some(1), Value::as_u64).context("weight")?;
        if weight > 0 {
            clusters.push((cluster(b["name"].as_str().context("name")?), weight));
        }
    }
    Ok(match clusters.as_slice() {
        [] => None,
        [(only, _)] => Some(json!({ "cluster": only })),
        _ => Some(json!({ "weighted_clusters": { "clusters":
            clusters.iter().map(|(name, weight)| json!({ "name": name, "weight": weight })).collect::<Vec<_>>() } })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_are_sorted_as_envoy_gateway_sorts_them() {
        let spec = json!({ "parentRefs": [], "rules": [
            { "name": "a", "matches": [{ "headers": [{ "type": "Exact", "name": "x", "value": "1" }] }],
              "backendRefs": [{ "name": "s-v2", "port": 80 }] },
            { "name": "b", "matches": [{ "method": "GET", "headers": [{ "type": "RegularExpression", "name": "y", "value": ".*" }] },
                                       { "path": { "type": "RegularExpression", "value": "/a.*" } }],
              "backendRefs": [{ "name": "s-v3", "port": 80, "weight": 20 }, { "name": "s-v1", "port": 80, "weight": 80 }] },
            { "name": "default", "backendRefs": [{ "name": "s-v1", "port": 80 }] }
        ]});
        let routes = http_routes(&spec, &|s| format!("c-{s}")).unwrap();
        assert_eq!(routes.len(), 4);
        assert_eq!(routes[0]["match"], json!({ "safe_regex": { "regex": "/a.*" } }), "a regex path ranks first");
        assert_eq!(routes[1]["match"]["headers"][1], json!({ "name": ":method", "string_match": { "exact": "GET" } }));
        assert_eq!(routes[2]["route"], json!({ "cluster": "c-s-v2" }));
        assert_eq!(routes[1]["route"]["weighted_clusters"]["clusters"][1], json!({ "name": "c-s-v1", "weight": 80 }));
        assert_eq!(routes[3]["match"], json!({ "prefix": "/" }));
        let prefix = json!({ "rules": [{ "matches": [{ "path": { "type": "PathPrefix", "value": "/abc/" } }], "backendRefs": [] }] });
        assert!(http_routes(&prefix, &|s| s.to_string()).unwrap().is_empty(), "no backend, no route");
        let unknown = json!({ "rules": [{ "matches": [{ "queryParams": [] }], "backendRefs": [] }] });
        assert!(http_routes(&unknown, &|s| s.to_string()).is_err());
    }
}
