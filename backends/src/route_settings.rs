//! Route settings (README "Route settings") as each backend writes them: a service's settings file section
//! and `with PROFILE` selections resolved per route ([`ServiceRoutes`]), then written as Envoy route fields
//! ([`envoy_fields`]) or Istio `HTTPRoute` fields (`RouteSettings::istio`, used by `manifest/istio/`).
//!
//! The Envoy form follows istiod's translation of the same `HTTPRoute` fields, so a settings file means the same
//! on both backends (Istio `pilot/pkg/networking/core/route/route.go`, `applyHTTPRouteDestination`,
//! `setTimeout`, `TranslateHeadersOperations`, `translateAppendHeaders`, `TranslateRequestMirrorPolicy`;
//! `route/retry/retry.go`, `ConvertPolicy`, `parseRetryOn`), using Envoy's `config.route.v3` fields:
//! `RouteAction.timeout`, `RouteAction.retry_policy` (`retry_on`, `num_retries`, `per_try_timeout`,
//! `retriable_status_codes`, `retry_host_predicate`, `host_selection_retry_max_attempts`),
//! `RouteAction.prefix_rewrite`, `RouteAction.host_rewrite_literal`, `Route.request_headers_to_add` /
//! `_to_remove` and `Route.response_headers_to_add` / `_to_remove` (`HeaderValueOption.append_action`), and
//! `RouteAction.request_mirror_policies` (`cluster`, `runtime_fraction`); CORS as istiod's `TranslateCORSPolicy`
//! writes it: `Route.typed_per_filter_config["envoy.filters.http.cors"]`, an
//! `envoy.extensions.filters.http.cors.v3.CorsPolicy` (the route-level `cors` field is deprecated since Envoy
//! 1.27), read by the `envoy.filters.http.cors` filter the listener must carry ([`CORS_FILTER`]).

use std::collections::BTreeMap;

use canary_compiler::route_settings::RouteExtras;
use canary_dsl::ast::Span;
use canary_dsl::Diagnostic;
pub use canary_settings::Mirror;
use canary_settings::{HeaderOps, RouteSettings, SettingsFile};
use serde_json::{json, Map, Value};

use crate::native::NativeService;

/// One HTTP service's route settings, resolved: each route's whole settings, its mirror included.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceRoutes {
    /// What every route of the service carries: the file's section, and the policy's `mirror P% to SUBSET`.
    pub all: RouteSettings,
    /// Rules that select a profile, by their span's start: the profile laid over `all` (its own mirror, its
    /// `unset` fields gone).
    pub by_rule: BTreeMap<usize, RouteSettings>,
}

impl ServiceRoutes {
    pub fn is_empty(&self) -> bool {
        self.all.is_empty() && self.by_rule.is_empty()
    }

    /// The settings of a rule's route (its profile's, else the service's).
    pub fn for_rule(&self, rule: Span) -> &RouteSettings {
        self.by_rule.get(&rule.start).unwrap_or(&self.all)
    }

    /// The service's settings, then each profile's: every route carries one of them.
    fn each(&self) -> impl Iterator<Item = &RouteSettings> {
        std::iter::once(&self.all).chain(self.by_rule.values())
    }

    /// Whether some route carries a CORS policy (its listener then needs [`cors_filter`]).
    pub fn has_cors(&self) -> bool {
        self.each().any(|s| s.cors_policy.is_some())
    }

    /// Whether a route carries an RE2 of the user's own (a CORS origin `regex`): plain Envoy then needs the
    /// raised program-size cap canaryc's bootstraps set, as for regexes lowered from the policy.
    pub fn uses_regex(&self) -> bool {
        let regex = |o: &canary_settings::OriginMatch| matches!(o, canary_settings::OriginMatch::Regex(_));
        self.each().filter_map(|s| s.cors_policy.as_ref()).any(|c| c.allow_origins.iter().any(regex))
    }

    /// Every subset some route mirrors to (the service's mirror, then the profiles'), each once: the subsets a
    /// deployment needs besides the routed ones.
    pub fn mirror_subsets(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for m in self.each().filter_map(|s| s.mirror.as_ref()) {
            if !out.contains(&m.subset) {
                out.push(m.subset.clone());
            }
        }
        out
    }
}

/// Resolves `service`'s settings: its file section, the profile every rule that reaches it selects (an
/// unknown one is an error at the `with NAME`), its mirror. `settings_file` names the file in messages.
pub fn service_routes(
    extras: &RouteExtras,
    file: Option<&SettingsFile>,
    settings_file: &str,
    service: &str,
    rule_spans: &[Span],
) -> Result<ServiceRoutes, Vec<Diagnostic>> {
    let empty = SettingsFile::default();
    let file = file.unwrap_or(&empty);
    let mut all = file.route(service, None).unwrap_or_default();
    all.mirror = extras.mirror(service).map(|m| Mirror { basis_points: m.basis_points, subset: m.subset.clone() });
    let section = file.services.get(service);
    let mut by_rule = BTreeMap::new();
    let mut errors = Vec::new();
    for span in rule_spans {
        let Some(profile) = extras.profile(span.start) else { continue };
        match section.and_then(|s| s.profiles.get(&profile.name)) {
            Some(settings) => {
                by_rule.insert(span.start, all.overlay(settings));
            }
            None => {
                let known: Vec<String> = file
                    .services
                    .get(service)
                    .map(|s| s.profiles.keys().map(|k| format!("`{k}`")).collect())
                    .unwrap_or_default();
                let hint = match (extras.settings_file.is_some(), known.is_empty()) {
                    (false, _) => {
                        "name the settings file with `settings \"FILE\"` at the top of the policy".to_string()
                    }
                    (true, true) => {
                        format!("add `{service}: {{profiles: {{{}: …}}}}` to {settings_file}", profile.name)
                    }
                    (true, false) => format!("the profiles of `{service}` are {}", known.join(", ")),
                };
                errors.push(
                    Diagnostic::error(
                        profile.span,
                        format!("unknown settings profile `{}` for service `{service}`", profile.name),
                    )
                    .with_label("not in the settings file")
                    .with_hint(hint),
                );
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ServiceRoutes { all, by_rule })
}

/// The rule spans a natively lowered service's routes came from (what [`service_routes`] needs).
pub fn native_rule_spans(native: &NativeService) -> Vec<Span> {
    native.routes.iter().map(|r| r.span).collect()
}

/// A route's Envoy fields: those of the `Route` itself, then those of its `RouteAction`.
pub type EnvoyFields = (Map<String, Value>, Map<String, Value>);

/// The HTTP filter that reads a route's CORS policy (Envoy: without a per-route policy it does nothing).
pub const CORS_FILTER: &str = "envoy.filters.http.cors";

/// The `envoy.filters.http.cors` entry of an `http_filters` chain (before the router).
pub fn cors_filter() -> Value {
    json!({
        "name": CORS_FILTER,
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors" },
    })
}

/// istiod's `TranslateCORSPolicy` (route.go): origins as `StringMatcher`s (`util.ConvertToEnvoyMatch`: exact,
/// prefix, `safe_regex`), lists joined with `,` (empty ones left out, as proto3 leaves an empty string),
/// `max_age` in whole seconds (the reader refuses fractions, which istiod would truncate), the filter enabled for
/// 100 %, and `forward_not_matching_preflights: true` (Istio's default `unmatchedPreflights: FORWARD`).
fn cors_policy(c: &canary_settings::Cors) -> Value {
    let origins: Vec<Value> = c
        .allow_origins
        .iter()
        .map(|o| match o {
            canary_settings::OriginMatch::Exact(v) => json!({ "exact": v }),
            canary_settings::OriginMatch::Prefix(v) => json!({ "prefix": v }),
            canary_settings::OriginMatch::Regex(v) => json!({ "safe_regex": { "regex": v } }),
        })
        .collect();
    let mut out = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "forward_not_matching_preflights": true,
        "filter_enabled": { "default_value": { "numerator": 100, "denominator": "HUNDRED" } },
    });
    if !origins.is_empty() {
        out["allow_origin_string_match"] = Value::Array(origins);
    }
    for (field, list) in [
        ("allow_methods", &c.allow_methods),
        ("allow_headers", &c.allow_headers),
        ("expose_headers", &c.expose_headers),
    ] {
        if !list.is_empty() {
            out[field] = json!(list.join(","));
        }
    }
    if let Some(t) = c.max_age {
        out["max_age"] = json!((t.0 / 1000).to_string());
    }
    if let Some(b) = c.allow_credentials {
        out["allow_credentials"] = json!(b);
    }
    out
}

/// Envoy's fields for one route: those of the `Route` itself and those of its `RouteAction`. `cluster` names the
/// mirror subset's cluster.
pub fn envoy_fields(settings: &RouteSettings, cluster: &dyn Fn(&str) -> String) -> Result<EnvoyFields, String> {
    let mut route = Map::new();
    let mut action = Map::new();
    if let Some(c) = &settings.cors_policy {
        route.insert("typed_per_filter_config".into(), json!({ CORS_FILTER: cors_policy(c) }));
    }
    if let Some(t) = settings.timeout {
        action.insert("timeout".into(), json!(t.to_string()));
    }
    if let Some(r) = settings.retries.as_ref().filter(|r| r.attempts > 0) {
        // retry.go ConvertPolicy: Istio's defaults, then the user's fields; integers in retryOn are status codes.
        let mut on = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes".to_string();
        let mut codes: Vec<u16> = Vec::new();
        if let Some(text) = &r.retry_on {
            let mut words = Vec::new();
            for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part.parse::<u16>() {
                    Ok(code) => codes.push(code),
                    Err(_) => words.push(part),
                }
            }
            on = words.join(",");
            if !codes.is_empty() && !on.contains("retriable-status-codes") {
                on.push_str(if on.is_empty() { "retriable-status-codes" } else { ",retriable-status-codes" });
            }
        }
        let mut policy = json!({
            "retry_on": on,
            "num_retries": r.attempts,
            "retry_host_predicate": [{
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
                },
            }],
            "host_selection_retry_max_attempts": 5,
        });
        if !codes.is_empty() {
            policy["retriable_status_codes"] = json!(codes);
        }
        if let Some(t) = r.per_try_timeout {
            policy["per_try_timeout"] = json!(t.to_string());
        }
        action.insert("retry_policy".into(), policy);
    }
    if let Some(rw) = &settings.rewrite {
        if let Some(uri) = &rw.uri {
            action.insert("prefix_rewrite".into(), json!(uri));
        }
        if let Some(authority) = &rw.authority {
            action.insert("host_rewrite_literal".into(), json!(authority));
        }
    }
    if let Some(h) = &settings.headers {
        for (prefix, ops) in [("request", &h.request), ("response", &h.response)] {
            let add = header_values(ops);
            if !add.is_empty() {
                route.insert(format!("{prefix}_headers_to_add"), Value::Array(add));
            }
            if !ops.remove.is_empty() {
                route.insert(format!("{prefix}_headers_to_remove"), json!(ops.remove));
            }
        }
    }
    if let Some(m) = &settings.mirror {
        action.insert(
            "request_mirror_policies".into(),
            json!([{
                "cluster": cluster(&m.subset),
                "runtime_fraction": { "default_value": { "numerator": m.basis_points, "denominator": "TEN_THOUSAND" } },
            }]),
        );
    }
    Ok((route, action))
}

/// `set` overwrites, `add` appends (translateAppendHeaders): set entries first, then add, each by name.
fn header_values(ops: &HeaderOps) -> Vec<Value> {
    let set = ops.set.iter().map(|(k, v)| (k, v, "OVERWRITE_IF_EXISTS_OR_ADD"));
    let add = ops.add.iter().map(|(k, v)| (k, v, "APPEND_IF_EXISTS_OR_ADD"));
    set.chain(add)
        .map(|(k, v, action)| json!({ "header": { "key": k, "value": v }, "append_action": action }))
        .collect()
}

/// Adds the fields to one Envoy route object (`{"name", "match", "route": {…}}`).
pub fn apply_envoy(route: &mut Value, fields: &EnvoyFields) {
    if let Some(obj) = route.as_object_mut() {
        obj.extend(fields.0.clone());
    }
    if let Some(action) = route.get_mut("route").and_then(Value::as_object_mut) {
        action.extend(fields.1.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_settings::{Duration, Retries, Rewrite};

    #[test]
    fn envoy_fields_follow_istiod() {
        let s = RouteSettings {
            timeout: Some(Duration(500)),
            retries: Some(Retries {
                attempts: 3,
                per_try_timeout: Some(Duration(1000)),
                retry_on: Some("5xx,503".into()),
            }),
            rewrite: Some(Rewrite { uri: Some("/v2/".into()), authority: None }),
            mirror: Some(Mirror { basis_points: 1000, subset: "v3".into() }),
            ..Default::default()
        };
        let (route, action) = envoy_fields(&s, &|s| format!("c-{s}")).unwrap();
        assert!(route.is_empty());
        assert_eq!(action["timeout"], "0.5s");
        assert_eq!(action["retry_policy"]["retry_on"], "5xx,retriable-status-codes");
        assert_eq!(action["retry_policy"]["retriable_status_codes"], json!([503]));
        assert_eq!(action["prefix_rewrite"], "/v2/");
        assert_eq!(action["request_mirror_policies"][0]["cluster"], "c-v3");
        assert_eq!(action["request_mirror_policies"][0]["runtime_fraction"]["default_value"]["numerator"], 1000);
        let off = RouteSettings {
            retries: Some(Retries { attempts: 0, per_try_timeout: None, retry_on: None }),
            mirror: None,
            ..s
        };
        let (_, action) = envoy_fields(&off, &|s| s.into()).unwrap();
        assert!(action.get("retry_policy").is_none() && action.get("request_mirror_policies").is_none());
        let cors = canary_settings::Cors {
            allow_origins: vec![canary_settings::OriginMatch::Regex("https://.*".into())],
            allow_methods: vec!["GET".into(), "PUT".into()],
            max_age: Some(Duration(86_400_000)),
            ..Default::default()
        };
        let with_cors = RouteSettings { cors_policy: Some(cors), ..off.clone() };
        let profile = |s: &RouteSettings| ServiceRoutes { all: off.clone(), by_rule: [(7, s.clone())].into() };
        assert!(profile(&with_cors).uses_regex() && !profile(&off).uses_regex(), "a CORS origin regex is an RE2");
        let (route, _) = envoy_fields(&with_cors, &|s| s.into()).unwrap();
        let policy = &route["typed_per_filter_config"][CORS_FILTER];
        assert_eq!(policy["allow_origin_string_match"], json!([{ "safe_regex": { "regex": "https://.*" } }]));
        assert_eq!((&policy["allow_methods"], &policy["max_age"]), (&json!("GET,PUT"), &json!("86400")));
        assert!(policy.get("allow_headers").is_none());
    }
}
