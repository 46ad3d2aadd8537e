//! Requests as `canaryc eval`/`simulate` and the playground describe them, and the simulation loop, so the
//! CLI and the page build and count requests with one implementation.

use std::collections::BTreeMap;

use canary_eval::config::{Action, Config, StickyKey};
use canary_eval::{Policy, ServiceId, SimpleRequest};
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
    let keys: Vec<&StickyKey> = std::iter::once(&config.global)
        .chain(config.services.iter().map(|s| &s.rules))
        .flat_map(|set| &set.rules)
        .filter_map(|r| match &r.then {
            Action::Split(s) => s.by.as_ref(),
            Action::Route(_) => None,
        })
        .filter(|key| !fixed(base, key))
        .collect();
    let mut counts = BTreeMap::new();
    for i in 0..n {
        let mut req = base.clone();
        for key in &keys {
            let value = format!("sim-{i}");
            req = match key {
                StickyKey::Cookie(c) => req.cookie(c, &value),
                StickyKey::Header(h) => req.header(h, &value),
            };
        }
        let subset = policy.decide(service, &req, rng).subset.map_or("none", |s| policy.subset_name(s));
        *counts.entry(subset.to_string()).or_insert(0) += 1;
    }
    counts
}

/// Whether the request already carries the sticky key (any value of the header; the cookie in any `cookie`
/// header), so simulation keeps it instead of generating one.
fn fixed(req: &SimpleRequest, key: &StickyKey) -> bool {
    match key {
        StickyKey::Header(h) => req.values(h).next().is_some(),
        StickyKey::Cookie(c) => req.values("cookie").any(|v| canary_eval::cookie_value(v, c.as_bytes()).is_some()),
    }
}
