//! Route settings (README "Route settings") as an HTTPRoute rule carries them, exactly or refused per field with
//! the reason (Gateway API v1.6 `apis/v1/httproute_types.go`; Envoy Gateway v1.9.0's translation, which
//! `tests/src/envoy_gateway.rs` follows):
//!
//! * `timeout` → `timeouts.request` (GEP-1742, Standard), written in the spec's duration format (GEP-2257: up to
//!   four `<digits><h|m|s|ms>` parts of at most five digits, so `0.5s` is `500ms`); Envoy Gateway makes it the
//!   Envoy route's `timeout` (`processRouteTimeout`), as istiod does with Istio's.
//! * `headers` → `RequestHeaderModifier` / `ResponseHeaderModifier` filters (`set`, `add`, `remove`). A name both
//!   `set` and `add`ed is refused: Envoy Gateway keeps only the first it meets (`processRequestHeaderModifierFilter`
//!   skips a duplicate name), so one of the two edits would be lost.
//! * a mirror → a `RequestMirror` filter to the subset's Service with `percent` (GEP-3171, Standard: no `<gateway:experimental>` tag in v1.6.1);
//!   a share that is not a whole percent is refused: `fraction` reaches Envoy Gateway as a float32 percentage
//!   (`FromFloat32`: `uint32(p * 10000)` per million), which is not exact for every 0.01% step.
//! * `retries` are refused: GEP-1731 `retry` is Experimental (`<gateway:experimental>`), and its `codes`/`attempts`
//!   are not Istio's `retryOn`; `rewrite` and `corsPolicy` are not written yet (`URLRewrite`'s
//!   `ReplacePrefixMatch` and GEP-1767's `CORS` filter need their own oracle and proof).

use canary_settings::{HeaderOps, RouteSettings};
use serde_json::{json, Value};

/// A rule's `timeouts` and `filters`, or why a field cannot be written.
pub(super) fn rule_fields(
    settings: &RouteSettings,
    service: &str,
    port: u16,
) -> Result<(Option<Value>, Vec<Value>), String> {
    if settings.retries.is_some() {
        return Err("`retries`: the Gateway API's `retry` (GEP-1731) is Experimental and counts attempts and status \
                    codes rather than Istio's `retryOn` conditions; not written"
            .into());
    }
    if settings.rewrite.is_some() {
        return Err("`rewrite`: not written by --kind gateway-api yet (the `URLRewrite` filter)".into());
    }
    if settings.cors_policy.is_some() {
        return Err("`corsPolicy`: not written by --kind gateway-api yet (GEP-1767's `CORS` filter)".into());
    }
    let timeouts = settings.timeout.map(|t| json!({ "request": gateway_duration(t.0) }));
    let mut filters = Vec::new();
    if let Some(h) = &settings.headers {
        for (kind, field, ops) in [
            ("RequestHeaderModifier", "requestHeaderModifier", &h.request),
            ("ResponseHeaderModifier", "responseHeaderModifier", &h.response),
        ] {
            if !ops.is_empty() {
                filters.push(json!({ "type": kind, field: header_filter(ops)? }));
            }
        }
    }
    if let Some(m) = &settings.mirror {
        if m.basis_points % 100 != 0 {
            return Err(format!(
                "a mirror of {}: the `RequestMirror` filter's `percent` takes whole percents, and its `fraction` \
                 reaches Envoy Gateway as a float32 percentage that is not exact in 0.01% steps",
                canary_dsl::percent(m.basis_points)
            ));
        }
        let backend = json!({ "name": format!("{service}-{}", m.subset), "port": port });
        filters.push(json!({
            "type": "RequestMirror",
            "requestMirror": { "backendRef": backend, "percent": m.basis_points / 100 },
        }));
    }
    Ok((timeouts, filters))
}

fn header_filter(ops: &HeaderOps) -> Result<Value, String> {
    if let Some(name) = ops.set.keys().find(|k| ops.add.contains_key(*k)) {
        return Err(format!(
            "`headers`: `{name}` is both set and added; Envoy Gateway keeps only one edit per header name"
        ));
    }
    let pairs = |m: &std::collections::BTreeMap<String, String>| -> Vec<Value> {
        m.iter().map(|(k, v)| json!({ "name": k, "value": v })).collect()
    };
    let mut out = serde_json::Map::new();
    if !ops.set.is_empty() {
        out.insert("set".into(), Value::Array(pairs(&ops.set)));
    }
    if !ops.add.is_empty() {
        out.insert("add".into(), Value::Array(pairs(&ops.add)));
    }
    if !ops.remove.is_empty() {
        out.insert("remove".into(), json!(ops.remove));
    }
    Ok(Value::Object(out))
}

/// Milliseconds in GEP-2257's format: `2s`, `500ms`, `1h30m`, each part at most five digits.
fn gateway_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let parts = [(ms / 3_600_000, "h"), (ms / 60_000 % 60, "m"), (ms / 1000 % 60, "s"), (ms % 1000, "ms")];
    parts.iter().filter(|(n, _)| *n > 0).map(|(n, unit)| format!("{n}{unit}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_settings::{Duration, Headers, Mirror};

    #[test]
    fn durations_follow_gep_2257() {
        for (ms, text) in [(0, "0s"), (500, "500ms"), (2000, "2s"), (1500, "1s500ms"), (5_400_000, "1h30m")] {
            assert_eq!(gateway_duration(ms), text);
        }
        // The settings file's maximum (10 days) stays within five digits per part.
        assert_eq!(gateway_duration(864_000_000), "240h");
    }

    #[test]
    fn fields_or_reasons() {
        let mut s = RouteSettings { timeout: Some(Duration(500)), ..Default::default() };
        s.headers = Some(Headers {
            request: HeaderOps { set: [("x-a".into(), "1".into())].into(), ..Default::default() },
            ..Default::default()
        });
        s.mirror = Some(Mirror { basis_points: 1000, subset: "v3".into() });
        let (timeouts, filters) = rule_fields(&s, "web", 80).unwrap();
        assert_eq!(timeouts, Some(json!({ "request": "500ms" })));
        assert_eq!(filters[0]["requestHeaderModifier"]["set"], json!([{ "name": "x-a", "value": "1" }]));
        assert_eq!(
            filters[1]["requestMirror"],
            json!({ "backendRef": { "name": "web-v3", "port": 80 }, "percent": 10 })
        );
        s.mirror = Some(Mirror { basis_points: 1250, subset: "v3".into() });
        assert!(rule_fields(&s, "web", 80).unwrap_err().contains("whole percents"));
        s.mirror = None;
        s.headers.as_mut().unwrap().request.add.insert("x-a".into(), "2".into());
        assert!(rule_fields(&s, "web", 80).unwrap_err().contains("both set and added"));
    }
}
