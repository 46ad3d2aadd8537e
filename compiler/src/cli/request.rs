//! Request flags shared by `eval` and `simulate`, and the simulation loop.

use std::collections::BTreeMap;

use canary_eval::config::{Action, Config, StickyKey};
use canary_eval::{Policy, ServiceId, SimpleRequest};
use clap::Args;
use rand::rngs::SmallRng;

#[derive(Args, Debug, Default)]
pub struct RequestFlags {
    /// Service the request is for (optional when the policy has one service or only top-level rules).
    #[arg(long)]
    pub service: Option<String>,
    /// A header, `'NAME: VALUE'` (repeatable).
    #[arg(long = "header", value_name = "'K: V'")]
    headers: Vec<String>,
    /// A cookie, `NAME=VALUE` (repeatable).
    #[arg(long = "cookie", value_name = "K=V")]
    cookies: Vec<String>,
    /// A query parameter, `NAME=VALUE` (repeatable).
    #[arg(long = "query", value_name = "K=V")]
    queries: Vec<String>,
    /// A label of the calling workload, `LABEL=VALUE` (repeatable).
    #[arg(long = "source", value_name = "K=V")]
    sources: Vec<String>,
    /// Request path (default `/`).
    #[arg(long)]
    path: Option<String>,
    /// Request method (default `GET`).
    #[arg(long)]
    method: Option<String>,
    /// `:authority` (default: the service's name, as a mesh client would send it).
    #[arg(long)]
    host: Option<String>,
}

impl RequestFlags {
    pub fn build(&self, service: &str) -> Result<SimpleRequest, String> {
        let host = self.host.clone().unwrap_or_else(|| if service == "*" { "localhost".into() } else { service.into() });
        let mut req = SimpleRequest::new()
            .method(self.method.as_deref().unwrap_or("GET"))
            .path(self.path.as_deref().unwrap_or("/"))
            .host(&host);
        for h in &self.headers {
            let (k, v) = h.split_once(':').ok_or(format!("--header {h:?}: expected 'NAME: VALUE'"))?;
            req = req.header(k.trim(), v.trim());
        }
        for (flag, list) in [("cookie", &self.cookies), ("query", &self.queries), ("source", &self.sources)] {
            for kv in list {
                let (k, v) = kv.split_once('=').ok_or(format!("--{flag} {kv:?}: expected NAME=VALUE"))?;
                req = match flag {
                    "cookie" => req.cookie(k.trim(), v.trim()),
                    "query" => req.query(k.trim(), v.trim()),
                    _ => req.source(k.trim(), v.trim()),
                };
            }
        }
        Ok(req)
    }
}

/// Decides `n` requests built from `base`. Every sticky key the policy splits by gets a distinct generated
/// value per request (unless the user fixed it), so sticky splits are sampled over `n` different users.
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

fn fixed(req: &SimpleRequest, key: &StickyKey) -> bool {
    let header = |name: &str| req.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice());
    match key {
        StickyKey::Header(h) => header(h).is_some(),
        StickyKey::Cookie(c) => header("cookie").and_then(|v| canary_eval::cookie_value(v, c.as_bytes())).is_some(),
    }
}
