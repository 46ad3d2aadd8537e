//! `--kind wasmplugin`: the placements as `extensions.istio.io/v1alpha1` WasmPlugins (Istio ≥ 1.12), which the
//! istio-agent downloads, verifies and hands to Envoy.
//!
//! `failStrategy: FAIL_OPEN`: if the module cannot be fetched or loaded (registry down, wrong checksum, a
//! configuration the filter refuses), the proxies skip the filter rather than fail every request. For a canary
//! router that is the safe side: no subset header is set, so the VirtualService's last route sends the request
//! to the stable subset — canary users see stable for a while, nobody sees errors. (The price: while skipped,
//! a subset header a client forged is not overwritten; a proxy with FAIL_CLOSE would turn a bad rollout of the
//! *router* into an outage of every service in the namespace.) The filter itself never traps on a request.

use std::collections::BTreeMap;

use canary_eval::config::Protocol;
use serde::Serialize;

use super::k8s::{labels, plain, Metadata, Resource};
use super::module::WasmModule;
use super::plan::{Placement, PHASE};

pub(crate) const API_VERSION: &str = "extensions.istio.io/v1alpha1";
pub const FAIL_STRATEGY: &str = "FAIL_OPEN";

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(skip_serializing_if = "Option::is_none")]
    selector: Option<Selector>,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(rename = "type")]
    plugin_type: &'static str,
    phase: &'static str,
    priority: i32,
    fail_strategy: &'static str,
    #[serde(rename = "match")]
    traffic: Vec<TrafficSelector>,
    plugin_config: canary_yaml::Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Selector {
    match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct TrafficSelector {
    /// Always `CLIENT`: sidecar outbound and gateway listeners (see `plan`).
    mode: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<PortSelector>,
}

#[derive(Debug, Serialize)]
struct PortSelector {
    number: u16,
}

/// One WasmPlugin document per placement.
pub(crate) fn documents(placements: &[Placement], module: &WasmModule) -> Result<Vec<String>, String> {
    placements.iter().map(|p| wasm_plugin(p, module)?.to_yaml()).collect()
}

fn wasm_plugin(p: &Placement, module: &WasmModule) -> Result<Resource<Spec>, String> {
    // No selector (rather than an empty one) selects every workload of the namespace.
    let selector = (!p.selector.is_empty()).then(|| Selector { match_labels: labels(&p.selector) });
    Ok(Resource {
        api_version: API_VERSION,
        kind: "WasmPlugin",
        metadata: Metadata::new(&p.name, &p.namespace),
        spec: Spec {
            selector,
            url: module.url.clone(),
            sha256: module.sha256.clone(),
            plugin_type: match p.protocol {
                Protocol::Http => "HTTP",
                Protocol::Tcp => "NETWORK",
            },
            phase: PHASE,
            priority: p.priority,
            fail_strategy: FAIL_STRATEGY,
            traffic: vec![TrafficSelector {
                mode: "CLIENT",
                ports: p.ports.iter().map(|&number| PortSelector { number }).collect(),
            }],
            plugin_config: plain(&p.config)?,
        },
    })
}
