//! `--kind istio-routes`: per service a DestinationRule (the subsets) and a VirtualService that only maps the
//! filter's decision to a subset. The policy decides; these resources just make the decision take effect.
//!
//! * HTTP: one route per subset matching `x-canary-subset: exact vN` → subset vN, then a last route without a
//!   match to the *fallback* subset (the policy's default, else the first `--subsets`, else the first subset):
//!   what a request gets when the filter makes no decision or is skipped (FAIL_OPEN).
//! * The edge service also gets `NAME-gateway`, the same routes bound to the ingress `Gateway` resource and the
//!   public hosts (a VirtualService bound to the `mesh` gateway may not use the `*` host, so it is separate).
//! * TCP: the network filter names the subset cluster itself (`outbound|PORT|vN|FQDN`, which exists because the
//!   DestinationRule defines subset vN), so the VirtualService only holds a `tcp` route on the service port to
//!   the fallback subset, for connections the filter leaves undecided.
//!
//! `networking.istio.io/v1beta1` is served by every Istio from 1.5 to today (v1 only from 1.22), so the same
//! files work on the old meshes the EnvoyFilter kind is for. Resources are named after the service, so they
//! replace a lab's hand-written `forecast` VirtualService/DestinationRule when applied.

use std::collections::BTreeMap;

use canary_eval::config::Protocol;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::k8s::{Metadata, Resource};
use super::mesh::{Mesh, MeshService, SUBSET_LABEL};
use super::native_routes::{self, NativeHttpRoute, NativeTcpRoute};
use crate::native::NativeService;
use crate::route_settings::ServiceRoutes;

pub(crate) const API_VERSION: &str = "networking.istio.io/v1beta1";

#[derive(Debug, Serialize)]
struct DestinationRule {
    host: String,
    subsets: Vec<Subset>,
}

#[derive(Debug, Serialize)]
struct Subset {
    name: String,
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct VirtualService {
    hosts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    gateways: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    http: Vec<Http>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tcp: Vec<Tcp>,
}

/// A route that maps the filter's decision, or a native one that decides itself.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Http {
    Filter(HttpRoute),
    Native(NativeHttpRoute),
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Tcp {
    Filter(TcpRoute),
    Native(NativeTcpRoute),
}

#[derive(Debug, Serialize)]
struct HttpRoute {
    name: String,
    #[serde(rename = "match", skip_serializing_if = "Vec::is_empty")]
    matches: Vec<HeaderMatch>,
    route: Vec<RouteDestination>,
    /// Route settings and the mirror (`HTTPRoute` fields), empty without them.
    #[serde(flatten)]
    settings: Map<String, Value>,
}

#[derive(Debug, Serialize)]
struct HeaderMatch {
    headers: BTreeMap<String, StringMatch>,
}

#[derive(Debug, Serialize)]
struct StringMatch {
    exact: String,
}

#[derive(Debug, Serialize)]
struct TcpRoute {
    #[serde(rename = "match")]
    matches: Vec<PortMatch>,
    route: Vec<RouteDestination>,
}

#[derive(Debug, Serialize)]
struct PortMatch {
    port: u16,
}

#[derive(Debug, Serialize)]
pub(crate) struct RouteDestination {
    pub destination: Destination,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Destination {
    pub host: String,
    pub subset: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PortSelector {
    pub number: u16,
}

/// DestinationRule and VirtualService per service, plus the edge service's gateway VirtualService. A service in
/// `native` gets its policy as routes; the others get routes on the filter's decision. Returns the documents and
/// notes for the operator.
pub(crate) fn documents(
    mesh: &Mesh,
    native: &BTreeMap<String, NativeService>,
) -> Result<(Vec<String>, Vec<String>), String> {
    let ns = &mesh.opts.namespace;
    let edge = mesh.opts.edge.as_ref();
    if let Some(edge) = edge.filter(|e| e.gateway.is_none()) {
        return Err(format!(
            "--edge {}: name the Gateway resource its public VirtualService binds to with --gateway [NAMESPACE/]NAME",
            edge.service
        ));
    }
    let mut docs = Vec::new();
    let mut notes = Vec::new();
    for service in &mesh.services {
        let host = mesh.fqdn(&service.name);
        docs.push(resource("DestinationRule", &service.name, ns, destination_rule(service, &host)).to_yaml()?);
        let destination = |subset: &str| Destination {
            host: host.clone(),
            subset: subset.to_string(),
            port: service.port.map(|number| PortSelector { number }),
        };
        let empty = ServiceRoutes::default();
        let settings = mesh.opts.route_settings.get(&service.name).unwrap_or(&empty);
        if service.protocol == Protocol::Tcp && !settings.is_empty() {
            return Err(format!(
                "service `{}` is TCP: route settings and mirrors apply to HTTP routes only",
                service.name
            ));
        }
        let (http, tcp) = match (service.protocol, native.get(&service.name)) {
            (Protocol::Http, None) => (filter_http(mesh, service, settings)?, Vec::new()),
            (Protocol::Tcp, None) => (Vec::new(), vec![Tcp::Filter(filter_tcp(service, &host))]),
            (Protocol::Http, Some(lowered)) => {
                let (routes, note) = native_routes::http_routes(lowered, service, &destination, settings)?;
                notes.extend(note);
                (routes.into_iter().map(Http::Native).collect(), Vec::new())
            }
            (Protocol::Tcp, Some(lowered)) => {
                let (routes, note) = native_routes::tcp_routes(lowered, service, &destination);
                notes.extend(note);
                (Vec::new(), routes.into_iter().map(Tcp::Native).collect())
            }
        };
        let gateway_http = match (edge.filter(|e| e.service == service.name), native.get(&service.name)) {
            (Some(_), Some(lowered)) => Some(
                native_routes::http_routes(lowered, service, &destination, settings)?
                    .0
                    .into_iter()
                    .map(Http::Native)
                    .collect(),
            ),
            (Some(_), None) => Some(filter_http(mesh, service, settings)?),
            (None, _) => None,
        };
        let vs = VirtualService { hosts: vec![host.clone()], gateways: Vec::new(), http, tcp };
        docs.push(resource("VirtualService", &service.name, ns, vs).to_yaml()?);
        if let (Some(edge), Some(http)) = (edge, gateway_http) {
            let gateways = edge.gateway.iter().cloned().collect();
            let vs = VirtualService { hosts: edge.hosts.clone(), gateways, http, tcp: Vec::new() };
            docs.push(resource("VirtualService", &format!("{}-gateway", service.name), ns, vs).to_yaml()?);
        }
    }
    notes.sort();
    notes.dedup();
    Ok((docs, notes))
}

fn resource<S: Serialize>(kind: &'static str, name: &str, ns: &str, spec: S) -> Resource<S> {
    Resource { api_version: API_VERSION, kind, metadata: Metadata::new(name, ns), spec }
}

fn destination_rule(service: &MeshService, host: &str) -> DestinationRule {
    let subsets = service
        .subsets
        .iter()
        .map(|name| Subset { name: name.clone(), labels: BTreeMap::from([(SUBSET_LABEL.to_string(), name.clone())]) })
        .collect();
    DestinationRule { host: host.to_string(), subsets }
}

/// The `HTTPRoute` fields of a route's settings, its mirror included (`mirror` + `mirrorPercentage`, which
/// istiod turns into `request_mirror_policies` with a `runtime_fraction`: route.go `MirrorPercent`).
pub(crate) fn settings_fields(
    settings: &canary_settings::RouteSettings,
    destination: &dyn Fn(&str) -> Destination,
) -> Map<String, Value> {
    let mut fields = settings.istio();
    if let Some(m) = &settings.mirror {
        let d = destination(&m.subset);
        let mut mirror = json!({ "host": d.host, "subset": d.subset });
        if let Some(port) = d.port {
            mirror["port"] = json!({ "number": port.number });
        }
        fields.insert("mirror".into(), mirror);
        fields.insert("mirrorPercentage".into(), json!({ "value": f64::from(m.basis_points) / 100.0 }));
    }
    fields
}

/// Routes on the filter's decision: one per subset on the subset header, then the fallback.
fn filter_http(mesh: &Mesh, service: &MeshService, settings: &ServiceRoutes) -> Result<Vec<Http>, String> {
    if !settings.by_rule.is_empty() {
        return Err(format!("service `{}`: {}", service.name, crate::manifest::envoy::profile_needs_native()));
    }
    let dest = |subset: &str| Destination {
        host: mesh.fqdn(&service.name),
        subset: subset.to_string(),
        port: service.port.map(|number| PortSelector { number }),
    };
    let fields = settings_fields(&settings.all, &dest);
    let header = mesh.config.settings.header().to_ascii_lowercase();
    let destination = |subset: &str| RouteDestination {
        destination: Destination {
            host: mesh.fqdn(&service.name),
            subset: subset.to_string(),
            port: service.port.map(|number| PortSelector { number }),
        },
        weight: None,
    };
    let mut http: Vec<Http> = service
        .subsets
        .iter()
        .map(|subset| {
            Http::Filter(HttpRoute {
                name: format!("canary-{subset}"),
                matches: vec![HeaderMatch {
                    headers: BTreeMap::from([(header.clone(), StringMatch { exact: subset.clone() })]),
                }],
                route: vec![destination(subset)],
                settings: fields.clone(),
            })
        })
        .collect();
    http.push(Http::Filter(HttpRoute {
        name: "no-decision".to_string(),
        matches: Vec::new(),
        route: vec![destination(&service.fallback)],
        settings: fields,
    }));
    Ok(http)
}

/// The filter names the subset cluster itself; this route takes connections it leaves undecided.
fn filter_tcp(service: &MeshService, host: &str) -> TcpRoute {
    // Mesh::new refuses a TCP service without a port.
    let port = service.port.unwrap_or_default();
    let route = vec![RouteDestination {
        destination: Destination {
            host: host.to_string(),
            subset: service.fallback.clone(),
            port: Some(PortSelector { number: port }),
        },
        weight: None,
    }];
    TcpRoute { matches: vec![PortMatch { port }], route }
}
