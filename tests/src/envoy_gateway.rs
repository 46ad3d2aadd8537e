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
//! * Route settings (`canaryc`'s `gateway_api/settings.rs`): `timeouts.request` → the route's `timeout`
//!   (gatewayapi `route.go` `processRouteTimeout`, lines 1086–1095; xds `route.go` lines 118–122);
//!   `RequestHeaderModifier`/`ResponseHeaderModifier` → `request_headers_to_add` (`add` first with
//!   `APPEND_IF_EXISTS_OR_ADD`, then `set` with `OVERWRITE_IF_EXISTS_OR_ADD`: `filters.go`
//!   `processRequestHeaderModifierFilter`, lines 469–645, and xds `route.go` `buildXdsAddedHeaders`, lines
//!   695–733) and `_to_remove`; `RequestMirror` with `percent` → `request_mirror_policies` with `FromFloat32`'s
//!   `percent × 10000` per MILLION and `disable_shadow_host_suffix_append` (`filters.go` lines 1066–1131, xds
//!   `route.go` `buildXdsRequestMirrorPolicies`, lines 659–693). `backendRequest`, `retry`, `fraction` and the other
//!   filters are not modelled.
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
        known(rule, &["name", "matches", "backendRefs", "filters", "timeouts"], &at)?;
        let action = action(&rule["backendRefs"], cluster).with_context(|| format!("{at}.backendRefs"))?;
        let (own, in_action) = settings(rule, cluster).with_context(|| at.clone())?;
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
            let mut route = json!({ "match": route_match, "route": action });
            route.as_object_mut().context("a route")?.extend(own.clone());
            route["route"].as_object_mut().context("an action")?.extend(in_action.clone());
            ir.push((key, route));
        }
    }
    // sort.Stable(sort.Reverse(XdsIRRoutes)): descending by key, ties in the order built.
    ir.sort_by_key(|r| std::cmp::Reverse(r.0));
    Ok(ir.into_iter().map(|(_, r)| r).collect())
}

/// A rule's `timeouts` and `filters` as Envoy Gateway writes them (see the module's documentation): the
/// route's own fields and its action's.
fn settings(rule: &Value, cluster: &dyn Fn(&str) -> String) -> Result<(Map<String, Value>, Map<String, Value>)> {
    let (mut own, mut action) = (Map::new(), Map::new());
    if let Some(t) = rule.get("timeouts") {
        known(t, &["request"], "timeouts")?;
        let ms = gep_duration(t["request"].as_str().context("timeouts.request")?)?;
        action.insert("timeout".into(), json!(format!("{}.{:03}s", ms / 1000, ms % 1000)));
    }
    let mut mirrors = Vec::new();
    for f in rule.get("filters").and_then(Value::as_array).into_iter().flatten() {
        let kind = f["type"].as_str().context("filters[].type")?;
        match kind {
            "RequestHeaderModifier" | "ResponseHeaderModifier" => {
                let (field, which) = if kind == "RequestHeaderModifier" {
                    ("requestHeaderModifier", "request")
                } else {
                    ("responseHeaderModifier", "response")
                };
                known(f, &["type", field], "filters[]")?;
                let m = &f[field];
                known(m, &["set", "add", "remove"], field)?;
                let mut add = Vec::new();
                for (list, append_action) in [("add", "APPEND_IF_EXISTS_OR_ADD"), ("set", "OVERWRITE_IF_EXISTS_OR_ADD")]
                {
                    for h in m.get(list).and_then(Value::as_array).into_iter().flatten() {
                        known(h, &["name", "value"], list)?;
                        let value = h["value"].as_str().context("value")?;
                        let mut option =
                            json!({ "header": { "key": h["name"], "value": value }, "append_action": append_action });
                        if value.is_empty() {
                            option["keep_empty_value"] = json!(true);
                        }
                        add.push(option);
                    }
                }
                if !add.is_empty() {
                    own.insert(format!("{which}_headers_to_add"), Value::Array(add));
                }
                if let Some(remove) = m.get("remove") {
                    own.insert(format!("{which}_headers_to_remove"), remove.clone());
                }
            }
            "RequestMirror" => {
                known(f, &["type", "requestMirror"], "filters[]")?;
                let m = &f["requestMirror"];
                known(m, &["backendRef", "percent"], "requestMirror")?;
                known(&m["backendRef"], &["name", "port"], "requestMirror.backendRef")?;
                let name = m["backendRef"]["name"].as_str().context("backendRef.name")?;
                let fraction = match m.get("percent") {
                    Some(p) => {
                        let p = p.as_u64().context("percent")? as f32;
                        json!({ "numerator": (p * 10000.0) as u32, "denominator": "MILLION" })
                    }
                    None => json!({ "numerator": 100, "denominator": "HUNDRED" }),
                };
                mirrors.push(json!({
                    "cluster": cluster(name),
                    "runtime_fraction": { "default_value": fraction },
                    "disable_shadow_host_suffix_append": true,
                }));
            }
            other => bail!("filters[].type {other}: not modelled"),
        }
    }
    if !mirrors.is_empty() {
        action.insert("request_mirror_policies".into(), Value::Array(mirrors));
    }
    Ok((own, action))
}

/// A GEP-2257 duration (`1h30m`, `500ms`) in milliseconds.
fn gep_duration(text: &str) -> Result<u64> {
    let mut ms = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: u64 = rest[..digits].parse().with_context(|| format!("duration {text}"))?;
        rest = &rest[digits..];
        let (unit, scale) = [("ms", 1), ("h", 3_600_000), ("m", 60_000), ("s", 1000)]
            .into_iter()
            .find(|(u, _)| rest.starts_with(u))
            .with_context(|| format!("duration {text}"))?;
        rest = &rest[unit.len()..];
        ms += n * scale;
    }
    Ok(ms)
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
