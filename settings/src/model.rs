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
    /// Never has a `mirror` (the policy's `mirror P% to SUBSET` is the service's) nor `unset`.
    pub all: RouteSettings,
    pub profiles: BTreeMap<String, RouteSettings>,
}

impl ServiceSettings {
    /// The settings of a route that selects `profile` (none: the service's): the profile's fields replace the
    /// service's field by field, and its `unset` fields are removed.
    pub fn resolve(&self, profile: Option<&str>) -> Option<RouteSettings> {
        let Some(name) = profile else { return Some(self.all.clone()) };
        Some(self.all.overlay(self.profiles.get(name)?))
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

/// A route settings field, as a profile's `unset` names it (Istio's `HTTPRoute` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    Timeout,
    Retries,
    Rewrite,
    Headers,
    CorsPolicy,
    Mirror,
}

impl Field {
    pub const ALL: [Field; 6] =
        [Field::Timeout, Field::Retries, Field::Rewrite, Field::Headers, Field::CorsPolicy, Field::Mirror];

    pub fn name(self) -> &'static str {
        match self {
            Field::Timeout => "timeout",
            Field::Retries => "retries",
            Field::Rewrite => "rewrite",
            Field::Headers => "headers",
            Field::CorsPolicy => "corsPolicy",
            Field::Mirror => "mirror",
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// A rule's own mirror (a profile's `mirror: {subset}` + `mirrorPercentage: {value}`), or the service's
/// `mirror P% to SUBSET` once resolved: that share of the route's requests is copied to the subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// 1 = 0.01%, 10,000 = 100% (Istio's default when `mirrorPercentage` is absent).
    pub basis_points: u32,
    pub subset: String,
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
    /// Profiles only: the rule's own mirror, replacing the service's.
    pub mirror: Option<Mirror>,
    /// Profiles only: fields of the service's section the rule's routes go without (a route that lacks what the
    /// others carry, said exactly rather than refused). Empty once resolved.
    pub unset: std::collections::BTreeSet<Field>,
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

    /// These settings with `profile` laid over them: each field the profile has replaces this one, each field it
    /// unsets goes, the rest stay. The result unsets nothing.
    pub fn overlay(&self, profile: &RouteSettings) -> RouteSettings {
        fn pick<T: Clone>(own: &Option<T>, base: &Option<T>, unset: bool) -> Option<T> {
            own.clone().or_else(|| if unset { None } else { base.clone() })
        }
        let u = |f: Field| profile.unset.contains(&f);
        RouteSettings {
            timeout: pick(&profile.timeout, &self.timeout, u(Field::Timeout)),
            retries: pick(&profile.retries, &self.retries, u(Field::Retries)),
            rewrite: pick(&profile.rewrite, &self.rewrite, u(Field::Rewrite)),
            headers: pick(&profile.headers, &self.headers, u(Field::Headers)),
            cors_policy: pick(&profile.cors_policy, &self.cors_policy, u(Field::CorsPolicy)),
            mirror: pick(&profile.mirror, &self.mirror, u(Field::Mirror)),
            unset: Default::default(),
        }
    }

    /// Which fields are set.
    pub fn fields(&self) -> Vec<Field> {
        let set = [
            self.timeout.is_some(),
            self.retries.is_some(),
            self.rewrite.is_some(),
            self.headers.is_some(),
            self.cors_policy.is_some(),
            self.mirror.is_some(),
        ];
        Field::ALL.into_iter().zip(set).filter_map(|(f, s)| s.then_some(f)).collect()
    }

    /// The settings file's form of these settings: [`RouteSettings::istio`], then a profile's `mirror`
    /// (`{subset}`) + `mirrorPercentage` (`{value}`) and `unset`.
    pub fn file_fields(&self) -> Map<String, Value> {
        let mut out = self.istio();
        if let Some(m) = &self.mirror {
            out.insert("mirror".into(), json!({ "subset": m.subset }));
            out.insert("mirrorPercentage".into(), json!({ "value": f64::from(m.basis_points) / 100.0 }));
        }
        if !self.unset.is_empty() {
            out.insert("unset".into(), json!(self.unset.iter().map(|f| f.name()).collect::<Vec<_>>()));
        }
        out
    }

    /// The fields of an Istio `HTTPRoute` (networking.istio.io), in the order the file lists them; not the
    /// mirror, whose `host` is the writer's (`file_fields` has the file's form).
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
        let base = RouteSettings { mirror: Some(Mirror { basis_points: 1000, subset: "v3".into() }), ..s.all.clone() };
        let bare = RouteSettings { unset: [Field::Rewrite, Field::Mirror].into(), ..Default::default() };
        let plain = base.overlay(&bare);
        assert_eq!((plain.timeout, plain.rewrite, plain.mirror), (Some(Duration(1000)), None, None));
        let own = RouteSettings { mirror: Some(Mirror { basis_points: 5, subset: "v4".into() }), ..bare };
        assert_eq!(base.overlay(&own).mirror.map(|m| m.subset), Some("v4".into()));
        assert!(base.overlay(&own).unset.is_empty());
    }
}
