//! Requests as `canaryc eval`/`simulate` and the playground describe them, and the simulation loop, so the
//! CLI and the page build, count and describe requests with one implementation.

use std::collections::BTreeMap;

use canary_eval::config::{Action, Config, Protocol, StickyKey};
use canary_eval::{Decision, Policy, ServiceId, SimpleRequest};
use rand::rngs::SmallRng;

use crate::policy_text;

/// The service a request is for, as `canaryc eval --service`, `simulate` and `test` resolve it: a declared
/// service; any other name gets only the top-level rules (with a note to show when the policy declares
/// services, since a typo would otherwise pass silently); the name may be left out when the policy declares at
/// most one service (else `Err` lists the declared ones, for the caller to ask for one its own way).
pub fn resolve_service(policy: &Policy, name: Option<&str>) -> Result<(ServiceId, Option<String>), Vec<String>> {
    let declared: Vec<&str> = policy.declared_services().collect();
    match (name, declared.as_slice()) {
        (Some(name), _) => Ok(match policy.service(name) {
            Some(id) => (id, None),
            None if declared.is_empty() => (policy.fallback(), None),
            None => {
                (policy.fallback(), Some(format!("service `{name}` is not declared; only top-level rules apply to it")))
            }
        }),
        (None, []) => Ok((policy.fallback(), None)),
        (None, [one]) => Ok((policy.service(one).unwrap_or(policy.fallback()), None)),
        (None, many) => Err(many.iter().map(|s| s.to_string()).collect()),
    }
}

/// A request as `canaryc eval`'s flags describe it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestSpec {
    pub method: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub headers: Vec<(String, String)>,
    pub cookies: Vec<(String, String)>,
    pub queries: Vec<(String, String)>,
    pub sources: Vec<(String, String)>,
}

impl RequestSpec {
    /// The request, with `canaryc eval`'s defaults: `GET /`, `:authority` = the service's name.
    pub fn build(&self, service: &str) -> SimpleRequest {
        let host =
            self.host.clone().unwrap_or_else(|| if service == "*" { "localhost".into() } else { service.into() });
        let mut req = SimpleRequest::new()
            .method(self.method.as_deref().unwrap_or("GET"))
            .path(self.path.as_deref().unwrap_or("/"))
            .host(&host);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        for (k, v) in &self.cookies {
            req = req.cookie(k, v);
        }
        for (k, v) in &self.queries {
            req = req.query(k, v);
        }
        for (k, v) in &self.sources {
            req = req.source(k, v);
        }
        req
    }

    /// The request as `canaryc eval` flags, one argument per element (`["--cookie", "user=tester"]`).
    pub fn args(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut flag = |name: &str, value: String| {
            out.push(format!("--{name}"));
            out.push(value);
        };
        if let Some(m) = &self.method {
            flag("method", m.clone());
        }
        if let Some(p) = &self.path {
            flag("path", p.clone());
        }
        if let Some(h) = &self.host {
            flag("host", h.clone());
        }
        for (k, v) in &self.headers {
            flag("header", format!("{k}: {v}"));
        }
        for (k, v) in &self.cookies {
            flag("cookie", format!("{k}={v}"));
        }
        for (k, v) in &self.queries {
            flag("query", format!("{k}={v}"));
        }
        for (k, v) in &self.sources {
            flag("source", format!("{k}={v}"));
        }
        out
    }
}

/// What a simulation does with the sticky keys of the splits it may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Keys {
    /// Every simulated request is another user: each sticky key gets a generated value per request,
    /// replacing any value the request holds. This is what `simulate` means by default: N requests as
    /// N users would send them, so a sticky split shows its percentages.
    #[default]
    Generated,
    /// The keys are what the request holds (`--fixed-key`): N requests of one user, who always lands in
    /// the same bucket; a missing key is a per-request draw, as in the filter.
    Fixed,
    /// Keys the request holds are kept, missing ones are generated per request (`canaryc test`: a case that
    /// names its key is one user, a case that does not stands for its cohort).
    Missing,
}

/// A simulation's counts, and what it did with the sticky keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Simulation {
    /// Requests per subset (`none`: no decision).
    pub counts: BTreeMap<String, u64>,
    pub n: u64,
    pub keys: Keys,
    /// The service is TCP: the unit is a connection.
    pub tcp: bool,
    /// The sticky keys (`cookie uid`) of the splits this service may reach, each with the value the
    /// request holds (if any).
    pub sticky: Vec<(String, Option<String>)>,
}

impl Simulation {
    /// One sentence saying what was simulated; the CLI prints it on stderr, the page under its chart.
    pub fn note(&self) -> String {
        let n = thousands(self.n);
        let unit = if self.tcp { "connections" } else { "requests" };
        if self.sticky.is_empty() {
            return format!("{n} {unit}, each decided independently");
        }
        let keys = self.sticky.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(" and ");
        match self.keys {
            Keys::Generated => {
                let replaced: Vec<String> =
                    self.sticky.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}"))).collect();
                let replaced = match replaced.as_slice() {
                    [] => String::new(),
                    r => format!(" (the request's {} is replaced; a fixed key keeps it)", r.join(", ")),
                };
                format!("{n} {unit} from {n} users: {keys} gets a generated value per request{replaced}")
            }
            Keys::Missing => {
                let generated: Vec<&str> =
                    self.sticky.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k.as_str()).collect();
                format!(
                    "{n} {unit}: the keys the request holds are kept, {} generated per request",
                    generated.join(" and ")
                )
            }
            Keys::Fixed => {
                let held: Vec<String> = self
                    .sticky
                    .iter()
                    .map(|(k, v)| match v {
                        Some(v) => format!("{k}={v} is one user, always in the same bucket"),
                        None => format!("{k} is missing, so each request is drawn independently"),
                    })
                    .collect();
                format!("{n} {unit} with the keys as given: {}", held.join("; "))
            }
        }
    }
}

/// `canaryc simulate` and the page's chart: decides `n` copies of `base` for `service`, with the sticky
/// keys as `keys` says.
pub fn simulate(
    policy: &Policy,
    config: &Config,
    service: ServiceId,
    base: &SimpleRequest,
    n: u64,
    keys: Keys,
    rng: &mut SmallRng,
) -> Simulation {
    let mut counts = BTreeMap::new();
    simulate_each(policy, config, service, base, n, keys, rng, |d| {
        let subset = d.subset.map_or("none", |s| policy.subset_name(s));
        *counts.entry(subset.to_string()).or_insert(0) += 1;
    });
    Simulation {
        counts,
        n,
        keys,
        tcp: policy.protocol(service) == Protocol::Tcp,
        sticky: sticky_keys(policy, config, service)
            .iter()
            .map(|k| (policy_text::sticky_key(k), held(base, k)))
            .collect(),
    }
}

/// The draws of [`simulate`], one [`Decision`] at a time (`canaryc test` also needs the deciding rules).
#[allow(clippy::too_many_arguments)]
pub fn simulate_each(
    policy: &Policy,
    config: &Config,
    service: ServiceId,
    base: &SimpleRequest,
    n: u64,
    keys: Keys,
    rng: &mut SmallRng,
    mut each: impl FnMut(Decision),
) {
    let sticky = sticky_keys(policy, config, service);
    for i in 0..n {
        let decision = match keys {
            Keys::Fixed => policy.decide(service, base, rng),
            Keys::Generated | Keys::Missing => {
                let mut req = base.clone();
                for (k, key) in sticky.iter().enumerate() {
                    if keys == Keys::Missing && held(base, key).is_some() {
                        continue;
                    }
                    // Distinct per key too: splits on different keys draw independently, as real users' cookie
                    // and header ids would.
                    let value = format!("sim-{i}-{k}");
                    req = match key {
                        StickyKey::Cookie(c) => with_cookie(req, c, &value),
                        StickyKey::Header(h) => with_header(req, h, &value),
                    };
                }
                policy.decide(service, &req, rng)
            }
        };
        each(decision);
    }
}

/// The sticky keys of the splits `service` may reach, each once, in rule order.
fn sticky_keys<'c>(policy: &Policy, config: &'c Config, service: ServiceId) -> Vec<&'c StickyKey> {
    let mut keys: Vec<&StickyKey> = Vec::new();
    for &id in policy.service_rules(service) {
        if let Some(Action::Split(split)) = policy.config_rule(config, id).map(|r| &r.then) {
            if let Some(key) = &split.by {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
    }
    keys
}

/// The value of a sticky key in the request, as the evaluator would read it.
fn held(req: &SimpleRequest, key: &StickyKey) -> Option<String> {
    let value = match key {
        StickyKey::Header(h) => req.values(h).next(),
        // The first cookie of that name across `cookie` headers, as Envoy's cookie parser reads it.
        StickyKey::Cookie(c) => req.values("cookie").find_map(|v| canary_eval::cookie_value(v, c.as_bytes())),
    };
    value.map(|v| String::from_utf8_lossy(v).into_owned())
}

/// `req` with header `name` set to `value` alone (replacing what the request held).
fn with_header(mut req: SimpleRequest, name: &str, value: &str) -> SimpleRequest {
    req.headers.retain(|(n, _)| n != name);
    req.header(name, value)
}

/// `req` with cookie `name` = `value` first in one `cookie` header, where the evaluator reads it (the first
/// occurrence of a name wins, across `cookie` headers), and the request's own values of it removed.
fn with_cookie(mut req: SimpleRequest, name: &str, value: &str) -> SimpleRequest {
    let mut cookie = format!("{name}={value}");
    for (_, old) in req.headers.iter().filter(|(n, _)| n == "cookie") {
        let old = String::from_utf8_lossy(old);
        for pair in old.split(';').map(str::trim_start).filter(|p| !p.is_empty()) {
            if pair.split('=').next() != Some(name) {
                cookie.push_str("; ");
                cookie.push_str(pair);
            }
        }
    }
    req.headers.retain(|(n, _)| n != "cookie");
    req.header("cookie", cookie)
}

/// `10,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn setup(source: &str) -> (Config, Policy) {
        let config = crate::compile(source, "t.canary").map_err(|_| ()).expect("compiles").config;
        let policy = Policy::new(&config).expect("loads");
        (config, policy)
    }

    #[test]
    fn generated_keys_replace_the_requests_key_and_keep_its_other_cookies() {
        let (config, policy) = setup("service web {\n  cookie user=tester: 50% v2 by cookie uid\n  default v1\n}\n");
        let web = policy.service_or_global("web");
        let base = RequestSpec {
            cookies: vec![("uid".into(), "abc".into()), ("user".into(), "tester".into())],
            ..RequestSpec::default()
        }
        .build("web");
        let mut rng = SmallRng::seed_from_u64(1);
        let users = simulate(&policy, &config, web, &base, 10_000, Keys::Generated, &mut rng);
        // Every request still matches `cookie user=tester`, and its users split.
        let v2 = users.counts["v2"];
        assert!(v2.abs_diff(5_000) < 300, "{users:?}");
        assert_eq!(users.sticky, [("cookie uid".to_string(), Some("abc".to_string()))]);
        let one = simulate(&policy, &config, web, &base, 1_000, Keys::Fixed, &mut rng);
        assert_eq!(one.counts.len(), 1, "{one:?}");
        let cookie = with_cookie(base, "uid", "sim-1");
        assert_eq!(
            cookie.headers.iter().find(|(n, _)| n == "cookie").map(|(_, v)| v.as_slice()),
            Some(&b"uid=sim-1; user=tester"[..])
        );
    }

    #[test]
    fn args_are_evals_flags() {
        let spec = RequestSpec {
            method: Some("POST".into()),
            headers: vec![("x-a".into(), "1 2".into())],
            cookies: vec![("u".into(), "t".into())],
            sources: vec![("version".into(), "v2".into())],
            ..RequestSpec::default()
        };
        assert_eq!(
            spec.args(),
            ["--method", "POST", "--header", "x-a: 1 2", "--cookie", "u=t", "--source", "version=v2"]
        );
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
