//! `canaryc manifest --kind gateway-api`: the policy as Kubernetes Gateway API routes (Gateway API v1.5,
//! `gateway.networking.k8s.io/v1` HTTPRoute, `v1alpha2` TCPRoute — the versions the pinned npm
//! `@kubernetes-models/gateway-api@2.0.0` validates; v1.6 serves both).
//!
//! Per service, one route:
//! * **native** (`lower.rs`): the policy's rules as HTTPRoute rules, exact or refused — a subset is a
//!   `backendRef` to the Service `SERVICE-SUBSET` (the Gateway API idiom: a Service per version, e.g.
//!   `forecast-v2` selecting `app: forecast, version: v2`), a split is weighted `backendRefs` (0.01% steps),
//!   undecided requests take the default's Service in a last rule without matches;
//! * **filter**: the canary filter decides and sets `x-canary-subset`; the route sends `x-canary-subset: vN` to
//!   `SERVICE-vN` and everything else to the default. The filter is an `EnvoyExtensionPolicy`
//!   (`gateway.envoyproxy.io/v1alpha1`, Envoy Gateway: wasm from an HTTP URL with its sha256, or an OCI image;
//!   attached to the HTTPRoute so it runs for that route's traffic only, `failOpen: true` as the WasmPlugin's
//!   FAIL_OPEN) or an Istio `WasmPlugin` attached to the Gateway by `targetRefs` (mesh routes: the namespace's
//!   sidecars, service taken from the host, as `--kind wasmplugin` places it).
//!
//! The parent is a Gateway (`--parent gateway/[NS/]NAME`: one edge service, its public `--edge-host`s as
//! `hostnames`) or, for GAMMA mesh routes, each service's own Service (`--parent service`).

pub mod lower;
mod settings;

use std::collections::{BTreeMap, BTreeSet};

use canary_eval::config::{Config, Protocol};
use serde::Serialize;

use super::istio::k8s::{plain, stream, Metadata, Resource};
use super::istio::WasmModule;
use super::policy_subsets;
use crate::native::NativeAction;

pub use lower::{GwMatch, GwRule, GwService, PathMatch, Ranking, ValueMatch};

pub const HTTP_ROUTE_API: &str = "gateway.networking.k8s.io/v1";
pub const TCP_ROUTE_API: &str = "gateway.networking.k8s.io/v1alpha2";
pub const EXTENSION_POLICY_API: &str = "gateway.envoyproxy.io/v1alpha1";
const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// Who implements the routes (and runs the filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    EnvoyGateway,
    Istio,
}

impl Implementation {
    /// The precedence the implementation applies to the matches.
    pub fn ranking(self) -> Ranking {
        match self {
            Implementation::EnvoyGateway => Ranking::EnvoyGateway,
            Implementation::Istio => Ranking::Spec,
        }
    }
}

/// What the routes attach to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parent {
    Gateway {
        namespace: Option<String>,
        name: String,
    },
    /// GAMMA: each service's route attaches to its own Service.
    Service,
}

impl Parent {
    /// `gateway/NAME`, `gateway/NS/NAME` or `service`.
    pub fn parse(text: &str) -> Result<Parent, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let dns = |s: &str| {
            !s.is_empty()
                && s.len() <= 253
                && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        };
        match parts.as_slice() {
            ["service"] => Ok(Parent::Service),
            ["gateway", name] if dns(name) => Ok(Parent::Gateway { namespace: None, name: name.to_string() }),
            ["gateway", ns, name] if dns(ns) && dns(name) => {
                Ok(Parent::Gateway { namespace: Some(ns.to_string()), name: name.to_string() })
            }
            _ => Err(format!("--parent: expected gateway/NAME, gateway/NAMESPACE/NAME or service, got `{text}`")),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GatewayApiOptions {
    pub namespace: String,
    pub parent: Parent,
    pub implementation: Implementation,
    /// `--port SERVICE=PORT`: the port of every `SERVICE-SUBSET` Service (required: a Service backendRef needs one).
    pub ports: Vec<(String, u16)>,
    /// `--subsets`: subsets deployed for every service (the first takes undecided requests without a default).
    pub subsets: Vec<String>,
    /// `--edge-host`: the route's `hostnames` at a Gateway.
    pub hostnames: Vec<String>,
    /// Each HTTP service's route settings (`settings.rs` writes what has an exact form, refuses the rest).
    pub route_settings: BTreeMap<String, crate::route_settings::ServiceRoutes>,
}

/// The services to write routes for, with their protocols: the policy's and `extra`.
pub fn services(config: &Config, extra: &[String]) -> Vec<(String, Protocol)> {
    let mut out: Vec<(String, Protocol)> = config.services.iter().map(|s| (s.name.clone(), s.protocol)).collect();
    for name in extra {
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.clone(), Protocol::Http));
        }
    }
    out
}

/// The routes (and, where a service is not in `native`, the filter) as one YAML stream. `notes` go to stderr.
pub fn gateway_api_manifest(
    config: &Config,
    opts: &GatewayApiOptions,
    services: &[(String, Protocol)],
    native: &BTreeMap<String, GwService>,
    module: Option<&WasmModule>,
    source: &str,
) -> Result<super::istio::Manifest, String> {
    if services.is_empty() {
        return Err("--kind gateway-api: the policy declares no service: name one with --service NAME".into());
    }
    if let Parent::Gateway { .. } = opts.parent {
        if services.len() > 1 {
            return Err(format!(
                "--parent gateway/…: a Gateway's routes are for one edge service, and the policy has {}: pick one \
                 with --service NAME",
                services.len()
            ));
        }
    }
    if opts.parent == Parent::Service && !opts.hostnames.is_empty() {
        return Err("--edge-host names a Gateway's public hosts; mesh routes (--parent service) have none".into());
    }
    let mut documents = Vec::new();
    let mut notes = Vec::new();
    let mut filtered = Vec::new();
    for (service, protocol) in services {
        dns_label(service)?;
        let port = port_of(opts, service)?;
        let doc = match native.get(service) {
            Some(lowered) => match protocol {
                Protocol::Http => http_route(opts, service, port, &native_rules(opts, lowered, service, port)?)?,
                Protocol::Tcp => tcp_route(opts, service, port, lowered)?,
            },
            None => {
                if *protocol == Protocol::Tcp {
                    return Err(format!(
                        "service `{service}` is TCP: its filter form names clusters a TCPRoute cannot route to; \
                         only its native TCPRoute (weights per connection) exists"
                    ));
                }
                filtered.push(service.clone());
                let subsets = subsets_of(config, opts, service)?;
                http_route(opts, service, port, &header_rules(config, opts, service, port, &subsets)?)?
            }
        };
        documents.push(doc);
    }
    if !filtered.is_empty() {
        let module = module.ok_or("--kind gateway-api: services that need the filter need --wasm-url URL")?;
        documents.extend(filter_documents(config, opts, &filtered, module, &mut notes)?);
    }
    let mut header = format!(
        "Generated by `canaryc manifest --kind gateway-api` from {source}: regenerate rather than edit. Subset vN \
         of service S is the Service S-vN."
    );
    if !native.is_empty() {
        let names: Vec<&str> = native.keys().map(String::as_str).collect();
        header.push_str(&format!(" Decided by the routes themselves, without the filter: {}.", names.join(", ")));
    }
    Ok(super::istio::Manifest { yaml: stream(&header, &documents), notes })
}

fn dns_label(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not a Kubernetes Service name (a DNS label)"))
    }
}

fn port_of(opts: &GatewayApiOptions, service: &str) -> Result<u16, String> {
    opts.ports.iter().find(|(s, _)| s == service).map(|(_, p)| *p).ok_or_else(|| {
        format!("--kind gateway-api: a backendRef to a Service needs its port: pass --port {service}=PORT")
    })
}

/// The subsets the filter may choose for `service`, plus `--subsets`, and the default (first).
fn subsets_of(config: &Config, opts: &GatewayApiOptions, service: &str) -> Result<(String, Vec<String>), String> {
    let own = config.services.iter().find(|s| s.name == service);
    let default = own
        .and_then(|s| s.rules.default.clone())
        .or_else(|| config.global.default.clone())
        .or_else(|| opts.subsets.first().cloned())
        .ok_or_else(|| {
            format!("service `{service}` has no default: pass --subsets STABLE,… (the first takes undecided requests)")
        })?;
    let protocol = own.map_or(Protocol::Http, |s| s.protocol);
    let mut all: BTreeSet<String> = policy_subsets(config, service, protocol);
    all.extend(opts.subsets.iter().cloned());
    Ok((default, all.into_iter().collect()))
}

// ---- documents -------------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RouteSpec<'a, R: Serialize> {
    parent_refs: Vec<ParentRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hostnames: Vec<String>,
    rules: &'a [R],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ParentRef {
    group: &'static str,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpRule {
    name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    matches: Vec<Match>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    filters: Vec<serde_json::Value>,
    backend_refs: Vec<BackendRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeouts: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
struct TcpRule {
    #[serde(rename = "backendRefs")]
    backend_refs: Vec<BackendRef>,
}

#[derive(Debug, Default, Serialize)]
struct Match {
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<TypedValue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    headers: Vec<HeaderMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<String>,
}

#[derive(Debug, Serialize)]
struct TypedValue {
    #[serde(rename = "type")]
    kind: &'static str,
    value: String,
}

#[derive(Debug, Serialize)]
struct HeaderMatch {
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
    value: String,
}

#[derive(Debug, Serialize)]
struct BackendRef {
    name: String,
    port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    weight: Option<u32>,
}

fn backend(service: &str, subset: &str, port: u16, weight: Option<u32>) -> BackendRef {
    BackendRef { name: format!("{service}-{subset}"), port, weight }
}

fn parent_refs(opts: &GatewayApiOptions, service: &str, port: u16) -> Vec<ParentRef> {
    match &opts.parent {
        Parent::Gateway { namespace, name } => vec![ParentRef {
            group: GATEWAY_GROUP,
            kind: "Gateway",
            namespace: namespace.clone(),
            name: name.clone(),
            port: None,
        }],
        Parent::Service => {
            vec![ParentRef { group: "", kind: "Service", namespace: None, name: service.to_string(), port: Some(port) }]
        }
    }
}

fn native_rules(
    opts: &GatewayApiOptions,
    lowered: &GwService,
    service: &str,
    port: u16,
) -> Result<Vec<HttpRule>, String> {
    let empty = crate::route_settings::ServiceRoutes::default();
    let routes = opts.route_settings.get(service).unwrap_or(&empty);
    lowered
        .rules
        .iter()
        .map(|rule| {
            let own = rule.span.map_or(&routes.all, |span| routes.for_rule(span));
            let name = rule.line.map_or_else(|| "default".to_string(), |l| format!("rule-{l}"));
            let (timeouts, filters) = settings::rule_fields(own, service, port)
                .map_err(|why| format!("service `{service}`, {}: {why}", name.replace('-', " on line ")))?;
            Ok(HttpRule {
                name,
                matches: rule.matches.iter().map(write_match).collect(),
                filters,
                backend_refs: backends(&rule.action, &lowered.default, service, port),
                timeouts,
            })
        })
        .collect()
}

fn write_match(m: &GwMatch) -> Match {
    Match {
        path: m.path.as_ref().map(|p| match p {
            PathMatch::Prefix(v) => TypedValue { kind: "PathPrefix", value: v.clone() },
            PathMatch::Regex(v) => TypedValue { kind: "RegularExpression", value: v.clone() },
        }),
        headers: m
            .headers
            .iter()
            .map(|(name, v)| match v {
                ValueMatch::Exact(v) => HeaderMatch { kind: "Exact", name: name.clone(), value: v.clone() },
                ValueMatch::Regex(v) => HeaderMatch { kind: "RegularExpression", name: name.clone(), value: v.clone() },
            })
            .collect(),
        method: m.method.clone(),
    }
}

fn backends(action: &NativeAction, default: &str, service: &str, port: u16) -> Vec<BackendRef> {
    match action {
        NativeAction::Subset(s) => vec![backend(service, s, port, None)],
        // Weights are relative (weight ÷ sum): whole percents where every share is one, else 0.01% steps.
        NativeAction::Split { weights, .. } => {
            let scale = if weights.iter().all(|(_, w)| w % 100 == 0) { 100 } else { 1 };
            weights
                .iter()
                .map(|(s, w)| backend(service, s.as_deref().unwrap_or(default), port, Some(*w / scale)))
                .collect()
        }
    }
}

/// The filter form's rules: `x-canary-subset: vN` → `SERVICE-vN`, then the default.
fn header_rules(
    config: &Config,
    opts: &GatewayApiOptions,
    service: &str,
    port: u16,
    (default, subsets): &(String, Vec<String>),
) -> Result<Vec<HttpRule>, String> {
    let empty = crate::route_settings::ServiceRoutes::default();
    let routes = opts.route_settings.get(service).unwrap_or(&empty);
    if !routes.by_rule.is_empty() {
        return Err(format!("service `{service}`: {}", crate::manifest::envoy::profile_needs_native()));
    }
    // Every rule maps the filter's decision, so every rule carries the service's settings.
    let (timeouts, filters) =
        settings::rule_fields(&routes.all, service, port).map_err(|why| format!("service `{service}`: {why}"))?;
    let header = config.settings.header.clone().unwrap_or_else(|| canary_eval::config::Settings::DEFAULT_HEADER.into());
    let mut rules: Vec<HttpRule> = subsets
        .iter()
        .filter(|s| *s != default)
        .map(|s| HttpRule {
            name: format!("subset-{s}"),
            matches: vec![Match {
                headers: vec![HeaderMatch { kind: "Exact", name: header.clone(), value: s.clone() }],
                ..Match::default()
            }],
            filters: filters.clone(),
            backend_refs: vec![backend(service, s, port, None)],
            timeouts: timeouts.clone(),
        })
        .collect();
    rules.push(HttpRule {
        name: "default".into(),
        matches: Vec::new(),
        filters,
        backend_refs: vec![backend(service, default, port, None)],
        timeouts,
    });
    if rules.len() > lower::MAX_RULES {
        return Err(format!(
            "service `{service}` has {} subsets; an HTTPRoute holds {} rules",
            rules.len(),
            lower::MAX_RULES
        ));
    }
    Ok(rules)
}

fn http_route(opts: &GatewayApiOptions, service: &str, port: u16, rules: &[HttpRule]) -> Result<String, String> {
    let spec = RouteSpec { parent_refs: parent_refs(opts, service, port), hostnames: opts.hostnames.clone(), rules };
    Resource { api_version: HTTP_ROUTE_API, kind: "HTTPRoute", metadata: Metadata::new(service, &opts.namespace), spec }
        .to_yaml()
}

fn tcp_route(opts: &GatewayApiOptions, service: &str, port: u16, lowered: &GwService) -> Result<String, String> {
    let action = lowered.rules.first().map_or(NativeAction::Subset(lowered.default.clone()), |r| r.action.clone());
    let rules = vec![TcpRule { backend_refs: backends(&action, &lowered.default, service, port) }];
    let spec = RouteSpec { parent_refs: parent_refs(opts, service, port), hostnames: Vec::new(), rules: &rules };
    Resource { api_version: TCP_ROUTE_API, kind: "TCPRoute", metadata: Metadata::new(service, &opts.namespace), spec }
        .to_yaml()
}

// ---- the filter ------------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ExtensionPolicySpec {
    target_refs: Vec<TargetRef>,
    wasm: Vec<Wasm>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TargetRef {
    group: &'static str,
    kind: &'static str,
    name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Wasm {
    name: String,
    code: WasmCode,
    config: canary_yaml::Value,
    fail_open: bool,
}

#[derive(Debug, Serialize)]
struct WasmCode {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<CodeSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<CodeSource>,
}

#[derive(Debug, Serialize)]
struct CodeSource {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmPluginSpec {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    target_refs: Vec<TargetRef>,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(rename = "type")]
    plugin_type: &'static str,
    phase: &'static str,
    priority: i32,
    fail_strategy: &'static str,
    #[serde(rename = "match", skip_serializing_if = "Vec::is_empty")]
    traffic: Vec<Traffic>,
    plugin_config: canary_yaml::Value,
}

#[derive(Debug, Serialize)]
struct Traffic {
    mode: &'static str,
}

fn filter_documents(
    config: &Config,
    opts: &GatewayApiOptions,
    services: &[String],
    module: &WasmModule,
    notes: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    let _ = notes;
    match opts.implementation {
        Implementation::EnvoyGateway => {
            if opts.parent == Parent::Service {
                return Err("Envoy Gateway implements no mesh (GAMMA) routes: --parent service needs \
                            --implementation istio"
                    .into());
            }
            let code = if let Some(image) = module.url.strip_prefix("oci://") {
                WasmCode {
                    kind: "Image",
                    http: None,
                    image: Some(CodeSource { url: image.to_string(), sha256: module.sha256.clone() }),
                }
            } else if module.url.starts_with("https://") || module.url.starts_with("http://") {
                let sha256 = module.sha256.clone().ok_or(
                    "Envoy Gateway verifies an HTTP module by its sha256: pass --sha256 HEX (or a local copy of the \
                     module)",
                )?;
                WasmCode {
                    kind: "HTTP",
                    http: Some(CodeSource { url: module.url.clone(), sha256: Some(sha256) }),
                    image: None,
                }
            } else {
                return Err(format!(
                    "Envoy Gateway fetches a module over http(s) or from an OCI registry, not {}",
                    module.url
                ));
            };
            let mut policy = config.clone();
            policy.settings.service = Some(services[0].clone());
            Ok(vec![Resource {
                api_version: EXTENSION_POLICY_API,
                kind: "EnvoyExtensionPolicy",
                metadata: Metadata::new(format!("canary-{}", services[0]), &opts.namespace),
                spec: ExtensionPolicySpec {
                    target_refs: vec![TargetRef { group: GATEWAY_GROUP, kind: "HTTPRoute", name: services[0].clone() }],
                    wasm: vec![Wasm { name: "canary".into(), code, config: plain(&policy)?, fail_open: true }],
                },
            }
            .to_yaml()?])
        }
        Implementation::Istio => {
            let mut policy = config.clone();
            let (name, target_refs, traffic) = match &opts.parent {
                Parent::Gateway { name, namespace } => {
                    if namespace.as_deref().is_some_and(|ns| ns != opts.namespace) {
                        return Err("a WasmPlugin attaches to a Gateway of its own namespace: generate with \
                                    --namespace set to the Gateway's"
                            .into());
                    }
                    policy.settings.service = Some(services[0].clone());
                    (
                        format!("canary-{}", services[0]),
                        vec![TargetRef { group: GATEWAY_GROUP, kind: "Gateway", name: name.clone() }],
                        Vec::new(),
                    )
                }
                // The namespace's sidecars, the service taken from each request's host (as `--kind wasmplugin`).
                Parent::Service => ("canary-sidecars".to_string(), Vec::new(), vec![Traffic { mode: "CLIENT" }]),
            };
            Ok(vec![Resource {
                api_version: "extensions.istio.io/v1alpha1",
                kind: "WasmPlugin",
                metadata: Metadata::new(name, &opts.namespace),
                spec: WasmPluginSpec {
                    target_refs,
                    url: module.url.clone(),
                    sha256: module.sha256.clone(),
                    plugin_type: "HTTP",
                    phase: super::istio::PHASE,
                    priority: super::istio::GATEWAY_PRIORITY,
                    fail_strategy: super::istio::FAIL_STRATEGY,
                    traffic,
                    plugin_config: plain(&policy)?,
                },
            }
            .to_yaml()?])
        }
    }
}
