//! The settings as data: what the file says, validated, and its Istio `HTTPRoute` form.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Map, Value};

/// A whole settings file: a section per service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsFile {
    pub services: BTreeMap<String, ServiceSettings>,
}

/// One service's section: settings for all its routes, and named profiles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceSettings {
    pub all: RouteSettings,
    pub profiles: BTreeMap<String, RouteSettings>,
}

impl ServiceSettings {
    /// The settings of a route that selects `profile` (none: the service's): the profile's fields replace the
    /// service's field by field.
    pub fn resolve(&self, profile: Option<&str>) -> Option<RouteSettings> {
        let Some(name) = profile else { return Some(self.all.clone()) };
        let p = self.profiles.get(name)?;
        let a = &self.all;
        Some(RouteSettings {
            timeout: p.timeout.or(a.timeout),
            retries: p.retries.clone().or_else(|| a.retries.clone()),
            rewrite: p.rewrite.clone().or_else(|| a.rewrite.clone()),
            headers: p.headers.clone().or_else(|| a.headers.clone()),
            cors_policy: p.cors_policy.clone().or_else(|| a.cors_policy.clone()),
        })
    }
}

impl SettingsFile {
    /// A service's settings for a route selecting `profile`; `None` when the profile is unknown.
    pub fn route(&self, service: &str, profile: Option<&str>) -> Option<RouteSettings> {
        match self.services.get(service) {
            Some(s) => s.resolve(profile),
            None if profile.is_none() => Some(RouteSettings::default()),
            None => None,
        }
    }
}

/// A duration in milliseconds, written `2s`, `0.5s` or `250ms` (protobuf `Duration`, as Istio's YAML takes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub u64);

impl fmt::Display for Duration {
    /// Seconds with at most three decimals: `2s`, `0.5s`, `0.25s` — what both Istio and Envoy's JSON accept.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, ms) = (self.0 / 1000, self.0 % 1000);
        if ms == 0 {
            write!(f, "{s}s")
        } else {
            let frac = format!("{ms:03}");
            write!(f, "{s}.{}s", frac.trim_end_matches('0'))
        }
    }
}

impl Duration {
    /// `2s`, `1.5s`, `0.001s`, `250ms`; at most millisecond precision, at most 10 days.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let bad = || {
            format!("`{text}` is not a duration: write seconds (`2s`, `0.5s`, at most three decimals) or milliseconds (`250ms`)")
        };
        let digits = |s: &str| !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit());
        let ms = if let Some(n) = text.strip_suffix("ms") {
            if !digits(n) {
                return Err(bad());
            }
            n.parse::<u64>().map_err(|_| bad())?
        } else if let Some(n) = text.strip_suffix('s') {
            let (whole, frac) = n.split_once('.').unwrap_or((n, ""));
            if !digits(whole) || frac.len() > 3 || !(frac.is_empty() || digits(frac)) || n.ends_with('.') {
                return Err(bad());
            }
            let whole = whole.parse::<u64>().map_err(|_| bad())?;
            let frac = format!("{frac:0<3}").parse::<u64>().map_err(|_| bad())?;
            whole.checked_mul(1000).and_then(|w| w.checked_add(frac)).ok_or_else(bad)?
        } else {
            return Err(bad());
        };
        if ms > 864_000_000 {
            return Err(format!("`{text}` is over 10 days"));
        }
        Ok(Duration(ms))
    }
}

/// Every field optional: an empty `RouteSettings` changes nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteSettings {
    pub timeout: Option<Duration>,
    pub retries: Option<Retries>,
    pub rewrite: Option<Rewrite>,
    pub headers: Option<Headers>,
    pub cors_policy: Option<Cors>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retries {
    /// 0 turns retries off (Istio: no retry policy at all).
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
    /// Envoy `retry_on` conditions and status codes, comma-separated, as Istio takes them.
    pub retry_on: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rewrite {
    /// Replaces the path's matched prefix (`/` for every route canary writes: it matches paths with header
    /// matchers, never a route prefix).
    pub uri: Option<String>,
    pub authority: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Headers {
    pub request: HeaderOps,
    pub response: HeaderOps,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderOps {
    /// Overwrite or add.
    pub set: BTreeMap<String, String>,
    /// Append (add another value).
    pub add: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

impl HeaderOps {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum OriginMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cors {
    pub allow_origins: Vec<OriginMatch>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<Duration>,
    pub allow_credentials: Option<bool>,
}

impl RouteSettings {
    pub fn is_empty(&self) -> bool {
        *self == RouteSettings::default()
    }

    /// The fields of an Istio `HTTPRoute` (networking.istio.io), in the order the file lists them.
    pub fn istio(&self) -> Map<String, Value> {
        let mut out = Map::new();
        if let Some(t) = self.timeout {
            out.insert("timeout".into(), json!(t.to_string()));
        }
        if let Some(r) = &self.retries {
            let mut m = Map::new();
            m.insert("attempts".into(), json!(r.attempts));
            if let Some(t) = r.per_try_timeout {
                m.insert("perTryTimeout".into(), json!(t.to_string()));
            }
            if let Some(on) = &r.retry_on {
                m.insert("retryOn".into(), json!(on));
            }
            out.insert("retries".into(), Value::Object(m));
        }
        if let Some(r) = &self.rewrite {
            let mut m = Map::new();
            if let Some(u) = &r.uri {
                m.insert("uri".into(), json!(u));
            }
            if let Some(a) = &r.authority {
                m.insert("authority".into(), json!(a));
            }
            out.insert("rewrite".into(), Value::Object(m));
        }
        if let Some(h) = &self.headers {
            let mut m = Map::new();
            for (name, ops) in [("request", &h.request), ("response", &h.response)] {
                if !ops.is_empty() {
                    m.insert(name.into(), header_ops(ops));
                }
            }
            out.insert("headers".into(), Value::Object(m));
        }
        if let Some(c) = &self.cors_policy {
            let mut m = Map::new();
            if !c.allow_origins.is_empty() {
                let origins: Vec<Value> = c
                    .allow_origins
                    .iter()
                    .map(|o| match o {
                        OriginMatch::Exact(v) => json!({ "exact": v }),
                        OriginMatch::Prefix(v) => json!({ "prefix": v }),
                        OriginMatch::Regex(v) => json!({ "regex": v }),
                    })
                    .collect();
                m.insert("allowOrigins".into(), Value::Array(origins));
            }
            for (name, list) in [
                ("allowMethods", &c.allow_methods),
                ("allowHeaders", &c.allow_headers),
                ("exposeHeaders", &c.expose_headers),
            ] {
                if !list.is_empty() {
                    m.insert(name.into(), json!(list));
                }
            }
            if let Some(t) = c.max_age {
                m.insert("maxAge".into(), json!(t.to_string()));
            }
            if let Some(b) = c.allow_credentials {
                m.insert("allowCredentials".into(), json!(b));
            }
            out.insert("corsPolicy".into(), Value::Object(m));
        }
        out
    }
}

fn header_ops(ops: &HeaderOps) -> Value {
    let mut m = Map::new();
    if !ops.set.is_empty() {
        m.insert("set".into(), json!(ops.set));
    }
    if !ops.add.is_empty() {
        m.insert("add".into(), json!(ops.add));
    }
    if !ops.remove.is_empty() {
        m.insert("remove".into(), json!(ops.remove));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for (text, ms, back) in [
            ("2s", 2000, "2s"),
            ("0.5s", 500, "0.5s"),
            ("250ms", 250, "0.25s"),
            ("1.001s", 1001, "1.001s"),
            ("0s", 0, "0s"),
        ] {
            let d = Duration::parse(text).unwrap();
            assert_eq!(d.0, ms);
            assert_eq!(d.to_string(), back);
            assert_eq!(Duration::parse(&d.to_string()), Ok(d));
        }
        for bad in ["", "s", "2", "1.0001s", "-1s", "1.s", ".5s", "2m", "1e3s", "99999999999999s", "11d"] {
            assert!(Duration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn profiles_replace_fields() {
        let s = ServiceSettings {
            all: RouteSettings {
                timeout: Some(Duration(1000)),
                rewrite: Some(Rewrite::default()),
                ..Default::default()
            },
            profiles: BTreeMap::from([(
                "slow".to_string(),
                RouteSettings { timeout: Some(Duration(9000)), ..Default::default() },
            )]),
        };
        let slow = s.resolve(Some("slow")).unwrap();
        assert_eq!(slow.timeout, Some(Duration(9000)));
        assert!(slow.rewrite.is_some());
        assert_eq!(s.resolve(Some("nope")), None);
    }
}
