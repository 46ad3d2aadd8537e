//! Requests as `canaryc eval`/`simulate` and the playground describe them, and the simulation loop, so the
//! CLI and the page build and count requests with one implementation.

use std::collections::BTreeMap;

use canary_eval::config::{Action, Config, StickyKey};
use canary_eval::{Decision, Policy, ServiceId, SimpleRequest};
use rand::rngs::SmallRng;

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

fn fixed(req: &SimpleRequest, key: &StickyKey) -> bool {
    let header = |name: &str| req.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice());
    match key {
        StickyKey::Header(h) => header(h).is_some(),
        StickyKey::Cookie(c) => header("cookie").and_then(|v| canary_eval::cookie_value(v, c.as_bytes())).is_some(),
    }
}
