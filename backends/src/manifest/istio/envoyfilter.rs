//! `--kind envoyfilter`: the same placements as `networking.istio.io/v1alpha3` EnvoyFilters, for meshes without
//! WasmPlugin (Istio < 1.12) or where the istio-agent must not download modules.
//!
//! Each patch inserts the wasm filter right before the filter that acts on the decision: HTTP
//! `INSERT_BEFORE envoy.filters.http.router` in the HTTP connection manager, TCP `INSERT_BEFORE
//! envoy.filters.network.tcp_proxy` — in `SIDECAR_OUTBOUND` (the caller's sidecar) or `GATEWAY` (the ingress
//! gateway). The filter config is Envoy's own (`envoy.extensions.filters.*.wasm.v3.Wasm`): the policy travels
//! as a `google.protobuf.StringValue` holding exactly the JSON WasmPlugin would pass, and the module is a local
//! file (`file://`, e.g. mounted with the `sidecar.istio.io/userVolume*` annotations) or an http(s) URL Envoy
//! fetches through the mesh cluster `outbound|PORT||HOST` and verifies with the required sha256.
//! `fail_open: true` mirrors WasmPlugin's FAIL_OPEN (see `wasmplugin`).

use std::collections::BTreeMap;

use canary_eval::config::Protocol;
use serde::Serialize;

use super::k8s::{labels, Metadata, Resource};
use super::module::{CodeSource, WasmModule};
use super::plan::{Placement, Proxies};

pub(crate) const API_VERSION: &str = "networking.istio.io/v1alpha3";
const HCM: &str = "envoy.filters.network.http_connection_manager";
const ROUTER: &str = "envoy.filters.http.router";
const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";
/// One VM per worker for every canary filter on a proxy (same code, same id), not one per plugin.
const VM_ID: &str = "canary";
const RUNTIME: &str = "envoy.wasm.runtime.v8";
/// How long Envoy waits for a remote module (Istio uses the same for WasmPlugin downloads).
const FETCH_TIMEOUT: &str = "30s";

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(skip_serializing_if = "Option::is_none")]
    workload_selector: Option<WorkloadSelector>,
    config_patches: Vec<Patch>,
}

#[derive(Debug, Serialize)]
struct WorkloadSelector {
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Patch {
    apply_to: &'static str,
    #[serde(rename = "match")]
    matcher: Match,
    patch: Operation,
}

#[derive(Debug, Serialize)]
struct Match {
    context: &'static str,
    listener: ListenerMatch,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ListenerMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    port_number: Option<u16>,
    filter_chain: FilterChainMatch,
}

#[derive(Debug, Serialize)]
struct FilterChainMatch {
    filter: FilterMatch,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FilterMatch {
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_filter: Option<Named>,
}

#[derive(Debug, Clone, Serialize)]
struct Named {
    name: &'static str,
}

#[derive(Debug, Serialize)]
struct Operation {
    operation: &'static str,
    value: Filter,
}

/// Envoy's own configuration from here down (snake_case proto field names).
#[derive(Debug, Serialize)]
struct Filter {
    name: String,
    typed_config: TypedConfig,
}

#[derive(Debug, Serialize)]
struct TypedConfig {
    #[serde(rename = "@type")]
    type_url: &'static str,
    config: PluginConfig,
}

#[derive(Debug, Serialize)]
struct PluginConfig {
    name: String,
    vm_config: VmConfig,
    configuration: StringValue,
    fail_open: bool,
}

#[derive(Debug, Serialize)]
struct VmConfig {
    vm_id: &'static str,
    runtime: &'static str,
    code: Code,
}

/// `AsyncDataSource`: exactly one of the two (a struct, not an enum, so yaml_serde writes no YAML tag).
#[derive(Debug, Clone, Serialize)]
struct Code {
    #[serde(skip_serializing_if = "Option::is_none")]
    local: Option<Local>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote: Option<Remote>,
}

#[derive(Debug, Clone, Serialize)]
struct Local {
    filename: String,
}

#[derive(Debug, Clone, Serialize)]
struct Remote {
    http_uri: HttpUri,
    sha256: String,
}

#[derive(Debug, Clone, Serialize)]
struct HttpUri {
    uri: String,
    cluster: String,
    timeout: &'static str,
}

#[derive(Debug, Serialize)]
struct StringValue {
    #[serde(rename = "@type")]
    type_url: &'static str,
    value: String,
}

/// One EnvoyFilter document per placement.
pub(crate) fn documents(placements: &[Placement], module: &WasmModule) -> Result<Vec<String>, String> {
    let code = code(module)?;
    placements.iter().map(|p| envoy_filter(p, &code)?.to_yaml()).collect()
}

fn code(module: &WasmModule) -> Result<Code, String> {
    Ok(match module.code_source()? {
        CodeSource::Local(path) => Code { local: Some(Local { filename: path.to_string() }), remote: None },
        CodeSource::Remote { uri, sha256 } => {
            let http_uri = HttpUri { uri: uri.to_string(), cluster: fetch_cluster(uri)?, timeout: FETCH_TIMEOUT };
            Code { local: None, remote: Some(Remote { http_uri, sha256: sha256.to_string() }) }
        }
    })
}

/// Istio's outbound cluster for the module server: the URL's host must be a mesh service (its FQDN) or a
/// ServiceEntry host, so the sidecar has the cluster.
fn fetch_cluster(uri: &str) -> Result<String, String> {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("http", uri));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, port.parse::<u16>().map_err(|_| format!("--wasm-url {uri}: bad port `{port}`"))?)
        }
        _ => (authority, if scheme == "https" { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(format!("--wasm-url {uri}: no host"));
    }
    Ok(format!("outbound|{port}||{host}"))
}

fn envoy_filter(p: &Placement, code: &Code) -> Result<Resource<Spec>, String> {
    let context = match p.proxies {
        Proxies::Sidecars => "SIDECAR_OUTBOUND",
        Proxies::Gateway => "GATEWAY",
    };
    let (apply_to, filter, sub_filter, type_url) = match p.protocol {
        Protocol::Http => (
            "HTTP_FILTER",
            HCM,
            Some(Named { name: ROUTER }),
            "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        ),
        Protocol::Tcp => {
            ("NETWORK_FILTER", TCP_PROXY, None, "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm")
        }
    };
    let configuration = serde_json::to_string(&p.config).map_err(|e| format!("cannot serialize the policy: {e}"))?;
    let ports: Vec<Option<u16>> = match p.ports.as_slice() {
        [] => vec![None],
        ports => ports.iter().copied().map(Some).collect(),
    };
    let config_patches = ports
        .into_iter()
        .map(|port_number| Patch {
            apply_to,
            matcher: Match {
                context,
                listener: ListenerMatch {
                    port_number,
                    filter_chain: FilterChainMatch {
                        filter: FilterMatch { name: filter, sub_filter: sub_filter.clone() },
                    },
                },
            },
            patch: Operation {
                operation: "INSERT_BEFORE",
                value: Filter {
                    name: p.name.clone(),
                    typed_config: TypedConfig {
                        type_url,
                        config: PluginConfig {
                            name: format!("{}.{}", p.namespace, p.name),
                            vm_config: VmConfig { vm_id: VM_ID, runtime: RUNTIME, code: code.clone() },
                            configuration: StringValue {
                                type_url: "type.googleapis.com/google.protobuf.StringValue",
                                value: configuration.clone(),
                            },
                            fail_open: true,
                        },
                    },
                },
            },
        })
        .collect();
    let workload_selector = (!p.selector.is_empty()).then(|| WorkloadSelector { labels: labels(&p.selector) });
    Ok(Resource {
        api_version: API_VERSION,
        kind: "EnvoyFilter",
        metadata: Metadata::new(&p.name, &p.namespace),
        spec: Spec { workload_selector, config_patches },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_clusters() {
        assert_eq!(
            fetch_cluster("http://wasm.tools.svc.cluster.local/c.wasm").unwrap(),
            "outbound|80||wasm.tools.svc.cluster.local"
        );
        assert_eq!(fetch_cluster("https://cdn.example.com:8443/c.wasm").unwrap(), "outbound|8443||cdn.example.com");
        assert_eq!(fetch_cluster("https://cdn.example.com").unwrap(), "outbound|443||cdn.example.com");
        assert!(fetch_cluster("http:///c.wasm").is_err());
    }
}
