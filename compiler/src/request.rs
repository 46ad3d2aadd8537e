//! Requests as `canaryc eval`/`simulate` and the playground describe them, and the simulation loop, so the
//! CLI and the page build and count requests with one implementation.

use std::collections::BTreeMap;

use canary_eval::config::{Action, Config, StickyKey};
use canary_eval::{Decision, Policy, ServiceId, SimpleRequest};
use rand::rngs::SmallRng;

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
#[derive(Default)]
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
}

/// `canaryc simulate`: decides `n` copies of `base`, each sticky key the policy splits by getting a
/// distinct generated value per request (unless the request fixes it).
pub fn simulate(
    policy: &Policy,
    config: &Config,
    service: ServiceId,
    base: &SimpleRequest,
    n: u64,
    rng: &mut SmallRng,
) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    simulate_each(policy, config, service, base, n, rng, |d| {
        let subset = d.subset.map_or("none", |s| policy.subset_name(s));
        *counts.entry(subset.to_string()).or_insert(0) += 1;
    });
    counts
}

/// The draws of [`simulate`], one [`Decision`] at a time (`canaryc test` also needs the deciding rules).
pub fn simulate_each(
    policy: &Policy,
    config: &Config,
    service: ServiceId,
    base: &SimpleRequest,
    n: u64,
    rng: &mut SmallRng,
    mut each: impl FnMut(Decision),
) {
    let keys: Vec<&StickyKey> = std::iter::once(&config.global)
        .chain(config.services.iter().map(|s| &s.rules))
        .flat_map(|set| &set.rules)
        .filter_map(|r| match &r.then {
            Action::Split(s) => s.by.as_ref(),
            Action::Route(_) => None,
        })
        .filter(|key| !fixed(base, key))
        .collect();
    for i in 0..n {
        let mut req = base.clone();
        for key in &keys {
            let value = format!("sim-{i}");
            req = match key {
                StickyKey::Cookie(c) => req.cookie(c, &value),
                StickyKey::Header(h) => req.header(h, &value),
            };
        }
        each(policy.decide(service, &req, rng));
    }
}

/// Whether the request already carries the sticky key (any value of the header; the cookie in any `cookie`
/// header), so simulation keeps it instead of generating one.
fn fixed(req: &SimpleRequest, key: &StickyKey) -> bool {
    match key {
        StickyKey::Header(h) => req.values(h).next().is_some(),
        StickyKey::Cookie(c) => req.values("cookie").any(|v| canary_eval::cookie_value(v, c.as_bytes()).is_some()),
    }
}
