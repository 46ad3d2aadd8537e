//! `canaryc manifest`: deployment artifacts generated from a compiled policy.
//!
//! Each kind lives in its own module so the CLI only picks one by `--kind`; every generator takes the
//! already-compiled [`canary_eval::Config`], so what is deployed is exactly what `canaryc compile` prints.

pub mod envoy;
pub mod envoy_routes;
pub mod gateway_api;
pub mod istio;
pub mod push;

use std::collections::BTreeSet;

use canary_eval::config::{Action, Config, Protocol, Rule};

pub use canary_durable::write_atomic;
pub use envoy::{envoy_bootstrap, EnvoyOptions};
pub use push::{ecds_resource, rds_resource, PushOptions};

/// Subsets the filter may choose for `service`, by the evaluator's rules: an HTTP service tries the top-level
/// rules and then its own; a TCP service only its own (top-level rules read headers); either falls back to its
/// own default, else the top-level one.
pub(crate) fn policy_subsets(config: &Config, service: &str, protocol: Protocol) -> BTreeSet<String> {
    let own = config.services.iter().find(|s| s.name == service).map(|s| &s.rules);
    let mut rules: Vec<&Rule> = own.map(|set| set.rules.iter().collect()).unwrap_or_default();
    if protocol == Protocol::Http {
        rules.extend(&config.global.rules);
    }
    let mut subsets: BTreeSet<String> =
        own.and_then(|set| set.default.clone()).or_else(|| config.global.default.clone()).into_iter().collect();
    for rule in rules {
        match &rule.then {
            Action::Route(subset) => {
                subsets.insert(subset.clone());
            }
            Action::Split(split) => subsets.extend(split.to.iter().map(|share| share.subset.clone())),
        }
    }
    subsets
}
