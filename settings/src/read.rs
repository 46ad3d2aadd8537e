//! The settings file, read with positions: every problem is `LINE:COL: message` (the caller adds `FILE:`),
//! anything unknown is refused — a misspelt `timeuot` must not silently do nothing.

use std::collections::BTreeMap;
use std::fmt;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{LoaderOptions, Node, Span};

use crate::model::{
    Cors, Duration, Field, HeaderOps, Headers, Mirror, OriginMatch, Retries, Rewrite, RouteSettings, ServiceSettings,
    SettingsFile,
};

/// Where and why a settings file is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

type Read<T> = Result<T, SettingsError>;

fn at(span: &Span, message: impl Into<String>) -> SettingsError {
    let (line, column) = span.start().map_or((1, 1), |m| (m.line(), m.column()));
    SettingsError { line, column, message: message.into() }
}

/// Envoy `retry_on` conditions (router filter docs, `x-envoy-retry-on` and `x-envoy-retry-grpc-on`).
pub const RETRY_ON: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// Parses and validates a settings file.
pub fn read(text: &str) -> Read<SettingsFile> {
    let options = LoaderOptions::default().error_on_duplicate_keys(true);
    let node = marked_yaml::parse_yaml_with_options(0, text, options).map_err(|e| {
        let message = e.to_string();
        // marked-yaml's messages carry the position as "… at line L column C" (or similar): keep them whole.
        SettingsError { line: 1, column: 1, message: format!("not a YAML mapping of services: {message}") }
    })?;
    let top = node.as_mapping().ok_or_else(|| at(node.span(), "expected a mapping of service names to settings"))?;
    let mut file = SettingsFile::default();
    for (name, section) in top.iter() {
        let service = name.as_str();
        if service.is_empty() || !service.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            return Err(at(name.span(), format!("`{service}` is not a service name")));
        }
        let map = mapping(section, &format!("service `{service}`"))?;
        let all = route_settings(map, true)?;
        let mut profiles = BTreeMap::new();
        if let Some(p) = map.get_node("profiles") {
            let pm = mapping(p, "`profiles`")?;
            for (pname, body) in pm.iter() {
                let name = pname.as_str();
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                    return Err(at(
                        pname.span(),
                        format!("`{name}` is not a profile name (letters, digits, `-`, `_`, `.`)"),
                    ));
                }
                let settings = route_settings(mapping(body, &format!("profile `{name}`"))?, false)?;
                profiles.insert(name.to_string(), settings);
            }
        }
        file.services.insert(service.to_string(), ServiceSettings { all, profiles });
    }
    Ok(file)
}

fn mapping<'a>(node: &'a Node, what: &str) -> Read<&'a MarkedMappingNode> {
    node.as_mapping().ok_or_else(|| at(node.span(), format!("{what}: expected a mapping")))
}

fn scalar<'a>(node: &'a Node, what: &str) -> Read<&'a MarkedScalarNode> {
    node.as_scalar().ok_or_else(|| at(node.span(), format!("`{what}`: expected a single value")))
}

fn known(map: &MarkedMappingNode, fields: &[&str], place: &str) -> Read<()> {
    for key in map.keys() {
        if !fields.contains(&key.as_str()) {
            return Err(at(
                key.span(),
                format!("unknown field `{}` in {place} (known: {})", key.as_str(), fields.join(", ")),
            ));
        }
    }
    Ok(())
}

fn duration(node: &Node, what: &str) -> Read<Duration> {
    let s = scalar(node, what)?;
    Duration::parse(s.as_str()).map_err(|e| at(s.span(), format!("`{what}`: {e}")))
}

fn text(node: &Node, what: &str) -> Read<String> {
    let s = scalar(node, what)?;
    let v = s.as_str();
    if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(at(s.span(), format!("`{what}`: a value may not contain CR, LF or NUL")));
    }
    Ok(v.to_string())
}

fn strings(node: &Node, what: &str) -> Read<Vec<String>> {
    let seq = node.as_sequence().ok_or_else(|| at(node.span(), format!("`{what}`: expected a list")))?;
    seq.iter().map(|n| text(n, what)).collect()
}

fn route_settings(map: &MarkedMappingNode, service_level: bool) -> Read<RouteSettings> {
    let fields: &[&str] = if service_level {
        &["timeout", "retries", "rewrite", "headers", "corsPolicy", "profiles"]
    } else {
        &["timeout", "retries", "rewrite", "headers", "corsPolicy", "mirror", "mirrorPercentage", "unset"]
    };
    if service_level {
        if let Some(key) = map.keys().find(|k| k.as_str() == "mirror" || k.as_str() == "mirrorPercentage") {
            return Err(at(
                key.span(),
                "a service's mirror is the policy's `mirror P% to SUBSET` statement; a profile may carry a rule's own \
                 `mirror` + `mirrorPercentage`",
            ));
        }
    }
    known(map, fields, if service_level { "a service's settings" } else { "a profile" })?;
    let mut out = RouteSettings::default();
    if !service_level {
        out.mirror = mirror(map)?;
        if let Some(n) = map.get_node("unset") {
            let seq = n.as_sequence().ok_or_else(|| at(n.span(), "`unset`: expected a list of field names"))?;
            for item in seq.iter() {
                let s = scalar(item, "unset")?;
                let field = Field::from_name(s.as_str()).ok_or_else(|| {
                    let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
                    at(s.span(), format!("`unset`: `{}` is not a field ({})", s.as_str(), names.join(", ")))
                })?;
                if map.get_node(field.name()).is_some() {
                    return Err(at(s.span(), format!("`unset`: the profile sets `{}` too", field.name())));
                }
                out.unset.insert(field);
            }
        }
    }
    if let Some(t) = map.get_node("timeout") {
        out.timeout = Some(duration(t, "timeout")?);
    }
    if let Some(r) = map.get_node("retries") {
        out.retries = Some(retries(mapping(r, "`retries`")?)?);
    }
    if let Some(r) = map.get_node("rewrite") {
        let m = mapping(r, "`rewrite`")?;
        known(m, &["uri", "authority"], "`rewrite`")?;
        let mut rw = Rewrite::default();
        if let Some(u) = m.get_node("uri") {
            let uri = text(u, "rewrite.uri")?;
            if !uri.starts_with('/') {
                return Err(at(u.span(), "`rewrite.uri` must start with `/` (it replaces the path's leading `/`)"));
            }
            rw.uri = Some(uri);
        }
        if let Some(a) = m.get_node("authority") {
            let authority = text(a, "rewrite.authority")?;
            if authority.is_empty() || authority.bytes().any(|b| b.is_ascii_whitespace()) {
                return Err(at(a.span(), "`rewrite.authority` must be a host name (with an optional port)"));
            }
            rw.authority = Some(authority);
        }
        if rw == Rewrite::default() {
            return Err(at(r.span(), "`rewrite` needs `uri` or `authority`"));
        }
        out.rewrite = Some(rw);
    }
    if let Some(h) = map.get_node("headers") {
        let m = mapping(h, "`headers`")?;
        known(m, &["request", "response"], "`headers`")?;
        let mut headers = Headers::default();
        if let Some(r) = m.get_node("request") {
            headers.request = header_ops(mapping(r, "`headers.request`")?, "headers.request")?;
        }
        if let Some(r) = m.get_node("response") {
            headers.response = header_ops(mapping(r, "`headers.response`")?, "headers.response")?;
        }
        out.headers = Some(headers);
    }
    if let Some(c) = map.get_node("corsPolicy") {
        out.cors_policy = Some(cors(mapping(c, "`corsPolicy`")?)?);
    }
    Ok(out)
}

/// A profile's `mirror: {subset: S}` and `mirrorPercentage: {value: P}` (Istio's names; the host is the
/// service's own, so it is not written). P in (0, 100] in 0.01% steps, 100 when absent (as in Istio).
fn mirror(map: &MarkedMappingNode) -> Read<Option<Mirror>> {
    let Some(node) = map.get_node("mirror") else {
        return match map.get_node("mirrorPercentage") {
            Some(p) => Err(at(p.span(), "`mirrorPercentage` without `mirror`")),
            None => Ok(None),
        };
    };
    let m = mapping(node, "`mirror`")?;
    known(m, &["subset"], "`mirror` (the service's own host is implied)")?;
    let s = scalar(m.get_node("subset").ok_or_else(|| at(node.span(), "`mirror` needs `subset`"))?, "mirror.subset")?;
    let subset = s.as_str();
    let valid = subset.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && subset.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !valid {
        return Err(at(s.span(), format!("`mirror.subset`: `{subset}` is not a subset name")));
    }
    let mut basis_points = 10_000;
    if let Some(p) = map.get_node("mirrorPercentage") {
        let pm = mapping(p, "`mirrorPercentage`")?;
        known(pm, &["value"], "`mirrorPercentage`")?;
        let v = scalar(pm.get_node("value").ok_or_else(|| at(p.span(), "`mirrorPercentage` needs `value`"))?, "value")?;
        let bp = v.as_str().parse::<f64>().ok().map(|p| p * 100.0).filter(|bp| (bp.round() - bp).abs() < 1e-6);
        basis_points = match bp.filter(|bp| (1.0..=10_000.0).contains(bp)) {
            Some(bp) => bp.round() as u32,
            None => {
                return Err(at(
                    v.span(),
                    "`mirrorPercentage.value`: a percentage in (0, 100] in steps of 0.01 (0 mirrors nothing: \
                     `unset: [mirror]` instead)",
                ))
            }
        };
    }
    Ok(Some(Mirror { basis_points, subset: subset.to_string() }))
}

fn retries(m: &MarkedMappingNode) -> Read<Retries> {
    known(m, &["attempts", "perTryTimeout", "retryOn"], "`retries`")?;
    let node = m.get_node("attempts").ok_or_else(|| at(m.span(), "`retries` needs `attempts`"))?;
    let s = scalar(node, "retries.attempts")?;
    let attempts = s
        .as_str()
        .parse::<u32>()
        .ok()
        .filter(|a| *a <= 100)
        .ok_or_else(|| at(s.span(), "`retries.attempts`: expected a whole number from 0 to 100"))?;
    let per_try_timeout = m.get_node("perTryTimeout").map(|n| duration(n, "retries.perTryTimeout")).transpose()?;
    let mut retry_on = None;
    if let Some(n) = m.get_node("retryOn") {
        let s = scalar(n, "retries.retryOn")?;
        for part in s.as_str().split(',').map(str::trim) {
            let code = part.parse::<u16>().ok().filter(|c| (100..=599).contains(c));
            if code.is_none() && !RETRY_ON.contains(&part) {
                return Err(at(
                    s.span(),
                    format!(
                        "`retries.retryOn`: `{part}` is neither an Envoy retry condition ({}) nor an HTTP status code",
                        RETRY_ON.join(", ")
                    ),
                ));
            }
        }
        retry_on = Some(s.as_str().to_string());
    }
    Ok(Retries { attempts, per_try_timeout, retry_on })
}

fn header_name(node: &MarkedScalarNode, place: &str) -> Read<String> {
    let name = node.as_str();
    let token = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(at(node.span(), format!("`{place}`: `{name}` is not a header name")));
    }
    if name.eq_ignore_ascii_case("host") {
        return Err(at(
            node.span(),
            format!("`{place}`: `{name}` cannot be edited here (Istio drops it): use `rewrite.authority`"),
        ));
    }
    Ok(name.to_ascii_lowercase())
}

fn header_ops(m: &MarkedMappingNode, place: &str) -> Read<HeaderOps> {
    known(m, &["set", "add", "remove"], &format!("`{place}`"))?;
    let mut ops = HeaderOps::default();
    for (field, target) in [("set", &mut ops.set), ("add", &mut ops.add)] {
        if let Some(n) = m.get_node(field) {
            let values = mapping(n, &format!("`{place}.{field}`"))?;
            for (k, v) in values.iter() {
                let name = header_name(k, &format!("{place}.{field}"))?;
                target.insert(name, text(v, &format!("{place}.{field}.{}", k.as_str()))?);
            }
        }
    }
    if let Some(n) = m.get_node("remove") {
        let seq = n.as_sequence().ok_or_else(|| at(n.span(), format!("`{place}.remove`: expected a list")))?;
        for item in seq.iter() {
            ops.remove.push(header_name(scalar(item, &format!("{place}.remove"))?, &format!("{place}.remove"))?);
        }
    }
    Ok(ops)
}

fn cors(m: &MarkedMappingNode) -> Read<Cors> {
    known(
        m,
        &["allowOrigins", "allowMethods", "allowHeaders", "exposeHeaders", "maxAge", "allowCredentials"],
        "`corsPolicy`",
    )?;
    let mut c = Cors::default();
    if let Some(n) = m.get_node("allowOrigins") {
        let seq = n.as_sequence().ok_or_else(|| at(n.span(), "`corsPolicy.allowOrigins`: expected a list"))?;
        for item in seq.iter() {
            let om = mapping(item, "an `allowOrigins` entry")?;
            known(om, &["exact", "prefix", "regex"], "an `allowOrigins` entry")?;
            let (key, value) = match om.iter().next() {
                Some(kv) if om.len() == 1 => kv,
                _ => {
                    return Err(at(
                        item.span(),
                        "an `allowOrigins` entry has exactly one of `exact`, `prefix`, `regex`",
                    ))
                }
            };
            let v = text(value, "allowOrigins")?;
            c.allow_origins.push(match key.as_str() {
                "exact" => OriginMatch::Exact(v),
                "prefix" => OriginMatch::Prefix(v),
                _ => OriginMatch::Regex(v),
            });
        }
    }
    if let Some(n) = m.get_node("allowMethods") {
        c.allow_methods = strings(n, "corsPolicy.allowMethods")?;
    }
    if let Some(n) = m.get_node("allowHeaders") {
        c.allow_headers = strings(n, "corsPolicy.allowHeaders")?;
    }
    if let Some(n) = m.get_node("exposeHeaders") {
        c.expose_headers = strings(n, "corsPolicy.exposeHeaders")?;
    }
    if let Some(n) = m.get_node("maxAge") {
        let age = duration(n, "corsPolicy.maxAge")?;
        if age.0 % 1000 != 0 {
            // `access-control-max-age` is in whole seconds; istiod would truncate.
            return Err(at(n.span(), "`corsPolicy.maxAge`: whole seconds only (the header carries seconds)"));
        }
        c.max_age = Some(age);
    }
    if let Some(n) = m.get_node("allowCredentials") {
        let s = scalar(n, "corsPolicy.allowCredentials")?;
        c.allow_credentials = Some(match s.as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(at(s.span(), "`corsPolicy.allowCredentials`: expected true or false")),
        });
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_service_with_a_profile() {
        let f = read(
            "reviews:\n  timeout: 2s\n  retries: {attempts: 3, perTryTimeout: 1s, retryOn: \"5xx,503\"}\n  rewrite: {uri: /v2/}\n  headers:\n    request: {set: {X-A: b}, remove: [x-c]}\n  profiles:\n    slow: {timeout: 10s}\n",
        )
        .unwrap();
        let s = &f.services["reviews"];
        assert_eq!(s.all.timeout, Some(Duration(2000)));
        assert_eq!(s.all.retries.as_ref().unwrap().retry_on.as_deref(), Some("5xx,503"));
        assert_eq!(s.all.headers.as_ref().unwrap().request.set["x-a"], "b");
        assert_eq!(f.route("reviews", Some("slow")).unwrap().timeout, Some(Duration(10000)));
        let f = read("reviews:\n  timeout: 2s\n  profiles:\n    m: {mirror: {subset: v3}, mirrorPercentage: {value: 12.5}, unset: [timeout]}\n    all: {mirror: {subset: v2}}\n").unwrap();
        let m = f.route("reviews", Some("m")).unwrap();
        assert_eq!((m.timeout, m.mirror), (None, Some(Mirror { basis_points: 1250, subset: "v3".into() })));
        assert_eq!(f.route("reviews", Some("all")).unwrap().mirror.map(|m| m.basis_points), Some(10_000));
    }

    #[test]
    fn refuses_with_positions() {
        let cases = [
            ("reviews:\n  timeuot: 2s\n", 2, 3, "unknown field `timeuot`"),
            ("reviews:\n  timeout: 2 s\n", 2, 12, "not a duration"),
            ("reviews:\n  retries: {attempts: x}\n", 2, 23, "whole number"),
            ("reviews:\n  retries: {attempts: 2, retryOn: \"5xx,bogus\"}\n", 2, 35, "`bogus`"),
            ("reviews:\n  headers: {request: {set: {host: a}}}\n", 2, 29, "rewrite.authority"),
            ("reviews:\n  rewrite: {uri: v2}\n", 2, 18, "must start with `/`"),
            ("reviews:\n  profiles: {slow: {profiles: {}}}\n", 2, 21, "unknown field `profiles`"),
            ("reviews:\n  mirror: {subset: v3}\n", 2, 3, "`mirror P% to SUBSET`"),
            ("reviews:\n  profiles: {a: {mirrorPercentage: {value: 5}}}\n", 2, 36, "without `mirror`"),
            ("reviews:\n  profiles: {a: {mirror: {subset: v3}, mirrorPercentage: {value: 0}}}\n", 2, 66, "(0, 100]"),
            ("reviews:\n  profiles: {a: {mirror: {subset: v3, host: x}}}\n", 2, 39, "unknown field `host`"),
            ("reviews:\n  profiles: {a: {unset: [timeuot]}}\n", 2, 26, "not a field"),
            ("reviews:\n  profiles: {a: {timeout: 1s, unset: [timeout]}}\n", 2, 39, "sets `timeout` too"),
            ("- a\n", 1, 1, "mapping"),
        ];
        for (text, line, column, why) in cases {
            let e = read(text).unwrap_err();
            assert!(e.message.contains(why), "{text}: {e}");
            assert_eq!((e.line, e.column), (line, column), "{text}: {e}");
        }
    }
}
