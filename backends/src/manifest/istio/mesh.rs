//! The mesh as the manifests see it: which services get resources, their protocol, port, subsets and the subset
//! a request gets when the filter makes no decision. Worked out and validated once from the compiled policy and
//! the flags, so every kind (WasmPlugin, EnvoyFilter, routes) is generated from the same facts and a mistake
//! (an unknown service in `--port`, a TCP service without a port, a name Kubernetes refuses) is reported before
//! any YAML is written.

use std::cmp::Ordering;

use canary_eval::config::{Config, Protocol};

use crate::manifest::policy_subsets;

/// Pod label that tells subsets apart: DestinationRule subset `vN` selects pods labelled `version: vN`, the Istio
/// convention the weather lab (and Bookinfo) use.
pub const SUBSET_LABEL: &str = "version";

/// Everything about the mesh that the policy does not say.
#[derive(Debug, Clone, PartialEq)]
pub struct IstioOptions {
    /// Namespace of the application (its services, sidecar plugins and routes).
    pub namespace: String,
    /// Services to generate for besides the ones the policy declares (top-level rules apply to them), e.g. every
    /// service of the app for `default v1`.
    pub services: Vec<String>,
    /// `--port SERVICE=PORT`: required for TCP services (Istio names subset clusters by port); for HTTP services
    /// optional, narrowing which outbound listeners run the filter.
    pub ports: Vec<(String, u16)>,
    /// `--subsets`: subsets deployed for every service (the first is the stable one when the policy has no
    /// default), merged with the ones the policy names.
    pub subsets: Vec<String>,
    /// The service the ingress gateway calls, if any.
    pub edge: Option<Edge>,
    /// Kubernetes cluster DNS domain, for service FQDNs and Istio cluster names.
    pub cluster_domain: String,
    /// Each HTTP service's route settings (README "Route settings"); a service without an entry has none.
    pub route_settings: std::collections::BTreeMap<String, crate::route_settings::ServiceRoutes>,
}

impl IstioOptions {
    pub fn new(namespace: &str) -> Self {
        IstioOptions {
            namespace: namespace.to_string(),
            services: Vec::new(),
            ports: Vec::new(),
            subsets: Vec::new(),
            edge: None,
            cluster_domain: "cluster.local".to_string(),
            route_settings: Default::default(),
        }
    }
}

/// The edge service and the ingress gateway in front of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub service: String,
    /// The `Gateway` resource (`NAME` or `NAMESPACE/NAME`) the gateway's VirtualService binds to.
    pub gateway: Option<String>,
    /// External hosts the gateway serves the edge service on (`*` = any).
    pub hosts: Vec<String>,
    /// Namespace of the gateway *workload* (its WasmPlugin/EnvoyFilter must live there to select it).
    pub namespace: String,
    /// Labels of the gateway workload.
    pub labels: Vec<(String, String)>,
}

impl Edge {
    /// The classic Istio ingress gateway: `istio: ingressgateway` in `istio-system`, any host.
    pub fn new(service: &str) -> Self {
        Edge {
            service: service.to_string(),
            gateway: None,
            hosts: vec!["*".to_string()],
            namespace: "istio-system".to_string(),
            labels: vec![("istio".to_string(), "ingressgateway".to_string())],
        }
    }
}

/// One service, resolved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MeshService {
    pub name: String,
    pub protocol: Protocol,
    pub port: Option<u16>,
    /// Every subset the filter can choose for this service plus `--subsets`, in natural order (v1, v2, v10).
    pub subsets: Vec<String>,
    /// Where a request without a decision goes: the policy's default, else the first `--subsets`, else the first
    /// subset.
    pub fallback: String,
}

/// The resolved mesh: options plus one [`MeshService`] per service, in policy order then `--service` order.
#[derive(Debug)]
pub(crate) struct Mesh<'a> {
    pub config: &'a Config,
    pub opts: &'a IstioOptions,
    pub services: Vec<MeshService>,
    /// Things worth telling the operator that do not stop generation (printed as warnings by the CLI).
    pub notes: Vec<String>,
}

impl<'a> Mesh<'a> {
    pub fn new(config: &'a Config, opts: &'a IstioOptions) -> Result<Mesh<'a>, String> {
        check_name(&opts.namespace, "--namespace", dns_label)?;
        if !opts.cluster_domain.split('.').all(dns_label) {
            return Err(format!("--cluster-domain: `{}` is not a DNS domain", opts.cluster_domain));
        }
        for subset in &opts.subsets {
            check_name(subset, "--subsets", dns_label)?;
        }
        let names = service_names(config, opts)?;
        for (name, _) in &opts.ports {
            if !names.contains(name) {
                return Err(format!(
                    "--port {name}=…: `{name}` is neither declared in the policy nor given with --service"
                ));
            }
        }
        let mut mesh = Mesh { config, opts, services: Vec::new(), notes: Vec::new() };
        for name in names {
            let service = mesh.resolve(&name)?;
            mesh.services.push(service);
        }
        if let Some(edge) = &opts.edge {
            if let Some((key, value)) =
                edge.labels.iter().find(|(k, v)| k.is_empty() || k.contains('*') || v.contains('*'))
            {
                return Err(format!(
                    "--gateway-label {key}={value}: selectors take exact labels (no `*`, no empty key)"
                ));
            }
            check_name(&edge.namespace, "--gateway-namespace", dns_label)?;
            if mesh.service(&edge.service).is_some_and(|s| s.protocol == Protocol::Tcp) {
                return Err(format!(
                    "--edge {}: a TCP service cannot sit behind the HTTP ingress gateway",
                    edge.service
                ));
            }
        }
        Ok(mesh)
    }

    pub fn service(&self, name: &str) -> Option<&MeshService> {
        self.services.iter().find(|s| s.name == name)
    }

    pub fn http(&self) -> impl Iterator<Item = &MeshService> {
        self.services.iter().filter(|s| s.protocol == Protocol::Http)
    }

    pub fn tcp(&self) -> impl Iterator<Item = &MeshService> {
        self.services.iter().filter(|s| s.protocol == Protocol::Tcp)
    }

    /// `NAME.NAMESPACE.svc.DOMAIN`: the host Istio knows the service by.
    pub fn fqdn(&self, service: &str) -> String {
        format!("{service}.{}.svc.{}", self.opts.namespace, self.opts.cluster_domain)
    }

    /// Istio's name for a subset's outbound cluster with `{subset}` left for the filter to fill in (TCP only:
    /// the network filter names the cluster itself through `envoy.tcp_proxy.cluster`).
    pub fn cluster_pattern(&self, service: &MeshService) -> Option<String> {
        service.port.map(|port| format!("outbound|{port}|{{subset}}|{}", self.fqdn(&service.name)))
    }

    fn resolve(&mut self, name: &str) -> Result<MeshService, String> {
        let declared = self.config.services.iter().find(|s| s.name == name);
        let protocol = declared.map_or(Protocol::Http, |s| s.protocol);
        let port = self.opts.ports.iter().rev().find(|(n, _)| n == name).map(|(_, p)| *p);
        if protocol == Protocol::Tcp && port.is_none() {
            return Err(format!(
                "TCP service `{name}` needs --port {name}=PORT: Istio names its subset clusters \
                 outbound|PORT|SUBSET|{}, and the filter must name the same cluster",
                self.fqdn(name)
            ));
        }
        let mut named = policy_subsets(self.config, name, protocol);
        // The mirror's subset needs its DestinationRule subset like any other.
        named.extend(self.opts.route_settings.get(name).map(|r| r.mirror_subsets()).unwrap_or_default());
        let policy_default =
            declared.and_then(|s| s.rules.default.clone()).or_else(|| self.config.global.default.clone());
        for subset in &named {
            check_name(subset, &format!("subset of service `{name}` in the policy"), dns_label)?;
            if !self.opts.subsets.is_empty() && !self.opts.subsets.contains(subset) {
                self.notes.push(format!(
                    "the policy can send `{name}` to subset `{subset}`, which is not in --subsets; its DestinationRule \
                     subset selects pods labelled {SUBSET_LABEL}={subset}"
                ));
            }
        }
        let mut subsets: Vec<String> = named.into_iter().chain(self.opts.subsets.iter().cloned()).collect();
        subsets.sort_by(|a, b| natural_cmp(a, b));
        subsets.dedup();
        let fallback = match (policy_default, self.opts.subsets.first(), subsets.first()) {
            (Some(default), _, _) => default,
            (None, Some(first), _) => first.clone(),
            (None, None, Some(first)) => {
                self.notes.push(format!(
                    "the policy gives `{name}` no default: requests the filter leaves undecided go to subset \
                     `{first}`; add `default SUBSET` to the policy or name the stable subset first in --subsets"
                ));
                first.clone()
            }
            (None, None, None) => {
                return Err(format!(
                    "the policy never sends `{name}` to a subset and --subsets is not given: there is nothing to route"
                ))
            }
        };
        Ok(MeshService { name: name.to_string(), protocol, port, subsets, fallback })
    }
}

/// Declared services in policy order, then `--service` names not declared; each a valid Kubernetes Service name.
fn service_names(config: &Config, opts: &IstioOptions) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    let edge = opts.edge.as_ref().map(|e| &e.service);
    for name in config.services.iter().map(|s| &s.name).chain(&opts.services).chain(edge) {
        if !names.contains(name) {
            check_name(name, "service name", dns1035_label)?;
            names.push(name.clone());
        }
    }
    if names.is_empty() {
        return Err("the policy declares no service: name the mesh's services with --service NAME (its top-level \
                    rules apply to each)"
            .into());
    }
    Ok(names)
}

/// `v2` < `v10`: digit runs compare as numbers, everything else as text.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let key = |(digits, text): (bool, &str)| match digits {
        true => (text.trim_start_matches('0').len(), text.trim_start_matches('0').to_string()),
        false => (0, text.to_string()),
    };
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let ord = match (x.0, y.0) {
            (true, true) => key(*x).cmp(&key(*y)),
            _ => x.1.cmp(y.1),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

fn check_name(name: &str, what: &str, ok: impl Fn(&str) -> bool) -> Result<(), String> {
    if ok(name) {
        Ok(())
    } else {
        Err(format!("{what} `{name}` is not a valid Kubernetes name (lowercase letters, digits and `-`, at most 63)"))
    }
}

/// RFC 1123 label: what namespaces and Istio subset names must be.
pub(crate) fn dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1035 label: what a Kubernetes Service name must be (an RFC 1123 label starting with a letter).
fn dns1035_label(s: &str) -> bool {
    dns_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["v10", "v2", "v1", "canary", "v1-beta"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["canary", "v1", "v1-beta", "v2", "v10"]);
    }

    #[test]
    fn names() {
        assert!(dns_label("v1") && dns_label("tcp-echo") && !dns_label("V1") && !dns_label("-a") && !dns_label(""));
        assert!(dns1035_label("forecast") && !dns1035_label("1forecast") && !dns1035_label("fore_cast"));
    }
}
