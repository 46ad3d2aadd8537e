//! Which proxies run the filter, on which traffic, with which configuration: decided once here, then written
//! as WasmPlugins or EnvoyFilters (the two only differ in syntax).
//!
//! The filter must run where the *caller's* identity and the route choice meet: the caller's outbound sidecar
//! (Istio `CLIENT` mode). There, `source LABEL=VALUE` reads the caller's own pod labels (S5: frontend v2's sidecar
//! sends forecast calls to forecast v2), and the route table that maps the subset header to a subset cluster is
//! the caller's. So:
//!
//! * **HTTP, sidecars — one plugin for the whole namespace** (`canary`): no workload selector (every caller
//!   needs it: frontend's sidecars for calls to forecast, forecast's for calls to recommendation), `CLIENT`
//!   mode, and the compiled policy *without* `settings.service`, so the filter resolves each request's service
//!   from `:authority` (`forecast`, `forecast:8080`, `forecast.weather.svc.cluster.local` → `forecast`).
//!   Istio shares one outbound HTTP listener between all services on a port, and a plugin can only be scoped by
//!   port, so per-service plugins with a fixed `settings.service` would all run on every call to any service on
//!   a shared port (port 80 everywhere is common) and the last one would decide. With `--port` given for every
//!   HTTP service, the plugin is narrowed to those ports.
//! * **HTTP, ingress gateway — one plugin for the edge service** (`--edge`): requests there carry the public
//!   host name, not the service's, so `settings.service` names the edge service. Istio classifies gateway
//!   listeners as `CLIENT` (the gateway is the caller of the edge service; `SERVER` would never match it). The
//!   plugin lives in the gateway's namespace and selects it by label: a WasmPlugin only selects workloads in its
//!   own namespace.
//! * **TCP — one plugin per service**: a connection carries no host name, so `settings.service` names the
//!   service and `settings.cluster` is Istio's subset cluster name, `outbound|PORT|{subset}|FQDN`; the plugin
//!   is scoped to the service's port (Istio's outbound TCP listeners are per service and port).
//!
//! Ordering: every plugin is in `UNSPECIFIED_PHASE`, which Istio inserts after its authn/authz filters and any
//! AUTHN/AUTHZ/STATS-phase plugins, right before the router (modulo Istio's fault/CORS/stats filters, which do
//! not route). Any place before the router works for routing — Envoy re-picks the route when a wasm filter
//! changes a request header — but this one is the latest: the policy sees headers that authentication
//! (`outputClaimToHeaders`) or other plugins add, and requests that authz rejects are never evaluated. A
//! negative priority puts it after plugins left at the default priority 0 in the same phase; the gateway plugin
//! is one lower, so where the namespace plugin also selects the gateway (a gateway deployed in the app's
//! namespace), the edge service's decision is written last.

use std::collections::BTreeMap;

use canary_eval::config::{Config, Protocol};

use super::mesh::Mesh;
use crate::native::NativeService;

/// After Istio's own filters, right before the router.
pub const PHASE: &str = "UNSPECIFIED_PHASE";
/// Below the default 0: other UNSPECIFIED_PHASE plugins (header enrichment) run first.
pub const SIDECAR_PRIORITY: i32 = -100;
/// One below the sidecar plugin: at a gateway both select, the edge decision wins.
pub const GATEWAY_PRIORITY: i32 = -101;

/// Which kind of proxy a placement targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proxies {
    /// Every sidecar of the namespace, outbound.
    Sidecars,
    /// The ingress gateway workload.
    Gateway,
}

/// One filter deployment: a WasmPlugin, or an EnvoyFilter.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    pub name: String,
    pub namespace: String,
    pub proxies: Proxies,
    /// Workload labels to select; empty selects every workload of the namespace.
    pub selector: Vec<(String, String)>,
    pub protocol: Protocol,
    /// Destination ports the filter is limited to; empty means all.
    pub ports: Vec<u16>,
    pub priority: i32,
    /// The plugin configuration: the compiled policy plus the settings this placement needs.
    pub config: Config,
}

/// The placements for a mesh: the namespace's HTTP plugin, the edge's gateway plugin, one per TCP service —
/// each only where a service needs the filter (services in `native` decide with their own routes). The
/// namespace plugin is scoped by port at best, so on a port it shares with a native service it still runs for
/// that service's calls; its decision header is then ignored by the native routes.
pub(crate) fn placements(mesh: &Mesh, native: &BTreeMap<String, NativeService>) -> Vec<Placement> {
    let ns = &mesh.opts.namespace;
    let filtered = |name: &str| !native.contains_key(name);
    let mut out = Vec::new();
    if mesh.http().any(|s| filtered(&s.name)) {
        let ports: Option<Vec<u16>> = mesh.http().filter(|s| filtered(&s.name)).map(|s| s.port).collect();
        let mut ports = ports.unwrap_or_default();
        ports.sort_unstable();
        ports.dedup();
        out.push(Placement {
            name: "canary".to_string(),
            namespace: ns.clone(),
            proxies: Proxies::Sidecars,
            selector: Vec::new(),
            protocol: Protocol::Http,
            ports,
            priority: SIDECAR_PRIORITY,
            config: mesh.config.clone(),
        });
    }
    if let Some(edge) = mesh.opts.edge.as_ref().filter(|e| filtered(&e.service)) {
        let mut config = mesh.config.clone();
        config.settings.service = Some(edge.service.clone());
        out.push(Placement {
            name: format!("canary-{ns}-{}", edge.service),
            namespace: edge.namespace.clone(),
            proxies: Proxies::Gateway,
            selector: edge.labels.clone(),
            protocol: Protocol::Http,
            ports: Vec::new(),
            priority: GATEWAY_PRIORITY,
            config,
        });
    }
    for service in mesh.tcp().filter(|s| filtered(&s.name)) {
        let mut config = mesh.config.clone();
        config.settings.service = Some(service.name.clone());
        config.settings.cluster = mesh.cluster_pattern(service);
        out.push(Placement {
            name: format!("canary-{}", service.name),
            namespace: ns.clone(),
            proxies: Proxies::Sidecars,
            selector: Vec::new(),
            protocol: Protocol::Tcp,
            ports: service.port.into_iter().collect(),
            priority: SIDECAR_PRIORITY,
            config,
        });
    }
    out
}
