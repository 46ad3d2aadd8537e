//! What istiod makes of a VirtualService's HTTP routes for one sidecar, for the fields `canaryc manifest
//! --backend native` writes: a test oracle, so the Istio form is checked in real Envoy without a cluster.
//!
//! Follows Istio's `pilot/pkg/networking/core/route/route.go` (`BuildHTTPRoutesForVirtualService`,
//! `sourceMatchHTTP`, `TranslateRouteMatch`, `translateHeaderMatch`, `canBeConvertedToPresentMatch`,
//! `TranslateRoute`): one Envoy route per match block, in order; a block whose `sourceLabels` are not a subset of
//! the proxy's labels is left out of that proxy's routes; `headers` are matchers as written (`{}` and
//! `regex: "*"` mean present); `withoutHeaders` adds `invert_match` and, except for presence,
//! `treat_missing_header_as_empty`; `uri` is the route's path specifier, `method`/`authority` match `:method`/
//! `:authority`; one destination is a cluster, several are weighted clusters (zero weights dropped). Any field it
//! does not know is an error, so the oracle never silently narrows what it checks.
//!
//! Route settings (README "Route settings"), when present, as `applyHTTPRouteDestination`, `setTimeout`,
//! `TranslateHeadersOperations`/`translateAppendHeaders`, `MirrorPercent`/`translatePercentToFractionalPercent`/
//! `TranslateRequestMirrorPolicy` (route.go) and `retry.ConvertPolicy`/`parseRetryOn` (route/retry/retry.go)
//! write them: `timeout`; `retry_policy` from Istio's defaults (`connect-failure,refused-stream,unavailable,
//! cancelled,retriable-status-codes`, 2 retries, `previous_hosts`, 5 host selection attempts) overridden by
//! `attempts` (0: none), `retryOn` (integers become `retriable_status_codes`) and `perTryTimeout`; `rewrite.uri`
//! as `prefix_rewrite`, `rewrite.authority` as `host_rewrite_literal`; `headers` set (overwrite) then add
//! (append), each sorted by name, and removals; `mirror` + `mirrorPercentage` as a mirror policy with
//! `value × 10000` per MILLION. When a route has no `timeout` or `retries` istiod writes `0s` and its default
//! retry policy; the oracle leaves those out, as it did before settings existed (they change no decision).
//! `corsPolicy` as `TranslateCORSPolicy` writes it, in the route's `typed_per_filter_config` under
//! `envoy.filters.http.cors` (a `cors.v3.CorsPolicy`): `allowOrigins` through `util.ConvertToEnvoyMatch` (exact,
//! prefix, regex → `safe_regex`), the lists joined with `,`, `maxAge` as `strconv.FormatInt(seconds)`,
//! `allowCredentials`, `filter_enabled` 100 % and `forward_not_matching_preflights` from `forwardNotMatchingPreflights`
//! (true unless `unmatchedPreflights: IGNORE`; that field and the deprecated `allowOrigin` are not modelled).
//! The sidecar's HCM carries the cors filter (istiod always writes it); the caller's bootstrap must too.

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

/// The Envoy routes a sidecar labelled `labels` gets from the VirtualService `spec` (its `http` list).
/// `cluster` names a subset's cluster.
pub fn http_routes(spec: &Value, labels: &[(String, String)], cluster: &dyn Fn(&str) -> String) -> Result<Vec<Value>> {
    let mut routes = Vec::new();
    let http = spec["http"].as_array().context("VirtualService without http routes")?;
    for (i, route) in http.iter().enumerate() {
        known(
            route,
            &[
                "name",
                "match",
                "route",
                "timeout",
                "retries",
                "rewrite",
                "headers",
                "mirror",
                "mirrorPercentage",
                "corsPolicy",
            ],
            &format!("http[{i}]"),
        )?;
        let mut action = action(&route["route"], cluster).with_context(|| format!("http[{i}].route"))?;
        let (route_fields, action_fields) = settings(route, cluster).with_context(|| format!("http[{i}]"))?;
        action.as_object_mut().context("an action")?.extend(action_fields);
        let blocks: Vec<Option<&Value>> = match route.get("match").and_then(Value::as_array) {
            Some(list) => list.iter().map(Some).collect(),
            None => vec![None],
        };
        for (j, block) in blocks.into_iter().enumerate() {
            let at = format!("http[{i}].match[{j}]");
            let with_fields = |mut r: Value| {
                if let Some(obj) = r.as_object_mut() {
                    obj.extend(route_fields.clone());
                }
                r
            };
            let Some(block) = block else {
                routes.push(with_fields(json!({ "match": { "prefix": "/" }, "route": action })));
                continue;
            };
            known(block, &["headers", "withoutHeaders", "uri", "method", "authority", "sourceLabels"], &at)?;
            let source = block.get("sourceLabels").and_then(Value::as_object);
            let holds = source.is_none_or(|want| {
                want.iter().all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && v.as_str() == Some(lv)))
            });
            if holds {
                let m = route_match(block).with_context(|| at.clone())?;
                routes.push(with_fields(json!({ "match": m, "route": action })));
            }
        }
    }
    Ok(routes)
}

/// The route's settings as istiod writes them: the `Route`'s own fields and its `RouteAction`'s.
fn settings(route: &Value, cluster: &dyn Fn(&str) -> String) -> Result<(Map<String, Value>, Map<String, Value>)> {
    let (mut own, mut action) = (Map::new(), Map::new());
    if let Some(t) = route.get("timeout") {
        action.insert("timeout".into(), t.clone());
    }
    if let Some(r) = route.get("retries") {
        known(r, &["attempts", "perTryTimeout", "retryOn"], "retries")?;
        let attempts = r["attempts"].as_u64().context("retries.attempts")?;
        if attempts > 0 {
            let mut policy = json!({
                "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
                "num_retries": attempts,
                "retry_host_predicate": [{
                    "name": "envoy.retry_host_predicates.previous_hosts",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
                    },
                }],
                "host_selection_retry_max_attempts": 5,
            });
            if let Some(on) = r.get("retryOn").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                let (mut words, mut codes) = (Vec::new(), Vec::new());
                for part in on.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    match part.parse::<u32>() {
                        Ok(code) if (100..600).contains(&code) => codes.push(code),
                        _ => words.push(part),
                    }
                }
                let mut joined = words.join(",");
                if !codes.is_empty() && !joined.contains("retriable-status-codes") {
                    joined.push_str(",retriable-status-codes");
                }
                policy["retry_on"] = json!(joined);
                if !codes.is_empty() {
                    policy["retriable_status_codes"] = json!(codes);
                }
            }
            if let Some(t) = r.get("perTryTimeout") {
                policy["per_try_timeout"] = t.clone();
            }
            action.insert("retry_policy".into(), policy);
        }
    }
    if let Some(rw) = route.get("rewrite") {
        known(rw, &["uri", "authority"], "rewrite")?;
        if let Some(uri) = rw.get("uri") {
            action.insert("prefix_rewrite".into(), uri.clone());
        }
        if let Some(a) = rw.get("authority") {
            action.insert("host_rewrite_literal".into(), a.clone());
        }
    }
    if let Some(h) = route.get("headers") {
        known(h, &["request", "response"], "headers")?;
        for which in ["request", "response"] {
            let Some(ops) = h.get(which) else { continue };
            known(ops, &["set", "add", "remove"], which)?;
            let mut add = Vec::new();
            for (field, append) in [("set", "OVERWRITE_IF_EXISTS_OR_ADD"), ("add", "APPEND_IF_EXISTS_OR_ADD")] {
                let mut entries: Vec<(&String, &Value)> =
                    ops.get(field).and_then(Value::as_object).into_iter().flatten().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for (k, v) in entries {
                    add.push(json!({ "header": { "key": k, "value": v }, "append_action": append }));
                }
            }
            if !add.is_empty() {
                own.insert(format!("{which}_headers_to_add"), Value::Array(add));
            }
            if let Some(remove) = ops.get("remove") {
                own.insert(format!("{which}_headers_to_remove"), remove.clone());
            }
        }
    }
    if let Some(c) = route.get("corsPolicy") {
        own.insert("typed_per_filter_config".into(), json!({ "envoy.filters.http.cors": cors_policy(c)? }));
    }
    match (route.get("mirror"), route.get("mirrorPercentage")) {
        (Some(m), percentage) => {
            known(m, &["host", "subset", "port"], "mirror")?;
            let fraction = match percentage {
                Some(p) => {
                    let value = p["value"].as_f64().context("mirrorPercentage.value")?;
                    json!({ "numerator": (value * 10000.0) as u32, "denominator": "MILLION" })
                }
                None => json!({ "numerator": 100, "denominator": "HUNDRED" }),
            };
            let subset = m["subset"].as_str().context("mirror.subset")?;
            action.insert(
                "request_mirror_policies".into(),
                json!([{ "cluster": cluster(subset), "runtime_fraction": { "default_value": fraction }, "trace_sampled": false }]),
            );
        }
        (None, Some(_)) => bail!("mirrorPercentage without mirror"),
        (None, None) => {}
    }
    Ok((own, action))
}

/// route.go `TranslateCORSPolicy` (see the module's documentation).
fn cors_policy(c: &Value) -> Result<Value> {
    known(
        c,
        &["allowOrigins", "allowMethods", "allowHeaders", "exposeHeaders", "maxAge", "allowCredentials"],
        "corsPolicy",
    )?;
    let mut out = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "forward_not_matching_preflights": true,
        "filter_enabled": { "default_value": { "numerator": 100, "denominator": "HUNDRED" } },
    });
    if let Some(origins) = c.get("allowOrigins") {
        let mut matchers = Vec::new();
        for o in origins.as_array().context("corsPolicy.allowOrigins")? {
            known(o, &["exact", "prefix", "regex"], "allowOrigins[]")?;
            matchers.push(match (o.get("exact"), o.get("prefix"), o.get("regex")) {
                (Some(v), None, None) => json!({ "exact": v }),
                (None, Some(v), None) => json!({ "prefix": v }),
                (None, None, Some(v)) => json!({ "safe_regex": { "regex": v } }),
                _ => bail!("allowOrigins[]: one of exact, prefix, regex"),
            });
        }
        out["allow_origin_string_match"] = Value::Array(matchers);
    }
    for (from, to) in
        [("allowMethods", "allow_methods"), ("allowHeaders", "allow_headers"), ("exposeHeaders", "expose_headers")]
    {
        let joined: Vec<&str> =
            c.get(from).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        if !joined.is_empty() {
            out[to] = json!(joined.join(","));
        }
    }
    if let Some(age) = c.get("maxAge") {
        let text = age.as_str().context("corsPolicy.maxAge")?;
        let seconds: f64 =
            text.strip_suffix('s').and_then(|n| n.parse().ok()).context("corsPolicy.maxAge in seconds")?;
        out["max_age"] = json!((seconds.floor() as i64).to_string());
    }
    if let Some(b) = c.get("allowCredentials") {
        out["allow_credentials"] = json!(b.as_bool().context("corsPolicy.allowCredentials")?);
    }
    Ok(out)
}

fn known(value: &Value, fields: &[&str], at: &str) -> Result<()> {
    if let Some(unknown) = value.as_object().and_then(|o| o.keys().find(|k| !fields.contains(&k.as_str()))) {
        bail!("{at}.{unknown}: not modelled by the oracle");
    }
    Ok(())
}

fn route_match(block: &Value) -> Result<Value> {
    let mut out = Map::new();
    out.insert("prefix".into(), json!("/"));
    let mut headers = Vec::new();
    for (field, invert) in [("headers", false), ("withoutHeaders", true)] {
        for (name, sm) in block.get(field).and_then(Value::as_object).into_iter().flatten() {
            let mut m = header_matcher(name, sm)?;
            if invert {
                m["invert_match"] = json!(true);
                if !present(sm) {
                    m["treat_missing_header_as_empty"] = json!(true);
                }
            }
            headers.push(m);
        }
    }
    if let Some(uri) = block.get("uri") {
        match (uri.get("exact"), uri.get("prefix"), uri.get("regex")) {
            (Some(p), None, None) => out.insert("path".into(), p.clone()),
            (None, Some(p), None) => out.insert("prefix".into(), p.clone()),
            (None, None, Some(r)) => out.insert("safe_regex".into(), json!({ "regex": r })),
            _ => bail!("uri: one of exact, prefix, regex"),
        };
        out.insert("case_sensitive".into(), json!(true));
    }
    for (field, name) in [("method", ":method"), ("authority", ":authority")] {
        if let Some(sm) = block.get(field) {
            headers.push(header_matcher(name, sm)?);
        }
    }
    if !headers.is_empty() {
        out.insert("headers".into(), Value::Array(headers));
    }
    Ok(Value::Object(out))
}

fn present(sm: &Value) -> bool {
    sm.as_object().is_some_and(Map::is_empty) || sm.get("regex").and_then(Value::as_str) == Some("*")
}

fn header_matcher(name: &str, sm: &Value) -> Result<Value> {
    if present(sm) {
        return Ok(json!({ "name": name, "present_match": true }));
    }
    let string_match = match (sm.get("exact"), sm.get("prefix"), sm.get("regex")) {
        (Some(v), None, None) => json!({ "exact": v }),
        (None, Some(v), None) => json!({ "prefix": v }),
        (None, None, Some(r)) => json!({ "safe_regex": { "regex": r } }),
        _ => bail!("{name}: one of exact, prefix, regex"),
    };
    Ok(json!({ "name": name, "string_match": string_match }))
}

fn action(route: &Value, cluster: &dyn Fn(&str) -> String) -> Result<Value> {
    let destinations = route.as_array().context("route: a list of destinations")?;
    let subset = |d: &Value| -> Result<String> {
        known(d, &["destination", "weight"], "route[]")?;
        Ok(cluster(d["destination"]["subset"].as_str().context("destination.subset")?))
    };
    if let [only] = destinations.as_slice() {
        return Ok(json!({ "cluster": subset(only)? }));
    }
    let mut clusters = Vec::new();
    for d in destinations {
        let weight = d["weight"].as_u64().unwrap_or(0);
        if weight > 0 {
            clusters.push(json!({ "name": subset(d)?, "weight": weight }));
        }
    }
    Ok(json!({ "weighted_clusters": { "clusters": clusters } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_become_routes_and_source_labels_select_proxies() {
        let spec = json!({ "http": [
            { "name": "rule-3", "match": [
                { "sourceLabels": { "version": "v2" } },
                { "headers": { "x": {} }, "withoutHeaders": { "y": { "exact": "a" }, "z": {} }, "uri": { "prefix": "/a" } }
              ],
              "route": [{ "destination": { "subset": "v2" }, "weight": 30 },
                        { "destination": { "subset": "v1" }, "weight": 70 }] },
            { "name": "default", "route": [{ "destination": { "subset": "v1" } }] }
        ]});
        let cluster = |s: &str| format!("c-{s}");
        let v1 = [("version".to_string(), "v1".to_string())];
        let routes = http_routes(&spec, &v1, &cluster).unwrap();
        assert_eq!(routes.len(), 2, "the sourceLabels block is not for a v1 proxy");
        assert_eq!(
            routes[0]["match"],
            json!({ "prefix": "/a", "case_sensitive": true, "headers": [
                { "name": "x", "present_match": true },
                { "name": "y", "string_match": { "exact": "a" }, "invert_match": true, "treat_missing_header_as_empty": true },
                { "name": "z", "present_match": true, "invert_match": true }
            ]})
        );
        assert_eq!(routes[0]["route"]["weighted_clusters"]["clusters"][1], json!({ "name": "c-v1", "weight": 70 }));
        let v2 = [("version".to_string(), "v2".to_string())];
        assert_eq!(http_routes(&spec, &v2, &cluster).unwrap().len(), 3);
        let unknown = json!({ "http": [{ "match": [{ "queryParams": {} }], "route": [] }] });
        assert!(http_routes(&unknown, &v1, &cluster).is_err());
    }
}
